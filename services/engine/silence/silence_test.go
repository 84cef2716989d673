package silence

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/klaxon-sh/klaxon/services/bus/bustest"
)

var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func eq(n, v string) Matcher { return Matcher{Name: n, Value: v, IsEqual: true} }

func TestMutesAndLifecycle(t *testing.T) {
	now := t0
	s := NewMemory(WithClock(func() time.Time { return now }))
	ctx := context.Background()
	mk := func(tenant string, start, end time.Duration, ms ...Matcher) *Silence {
		t.Helper()
		sil, err := s.Set(ctx, &Silence{Tenant: tenant, Matchers: ms, StartsAt: t0.Add(start), EndsAt: t0.Add(end)})
		if err != nil {
			t.Fatal(err)
		}
		return sil
	}
	byName := mk("a", 0, time.Hour, eq("alertname", "Foo"))
	regex := mk("a", 0, time.Hour, Matcher{Name: "instance", Value: "db-.*", IsRegex: true, IsEqual: true}, Matcher{Name: "env", Value: "dev", IsEqual: false})
	later := mk("a", 30*time.Minute, time.Hour, eq("alertname", "Later"))
	mk("b", 0, time.Hour, eq("alertname", "Bar"))

	cases := []struct {
		name   string
		at     time.Duration
		tenant string
		ls     model.LabelSet
		want   []string
	}{
		{"equality", 0, "a", model.LabelSet{"alertname": "Foo", "x": "y"}, []string{byName.ID}},
		{"regex and not-equal", 0, "a", model.LabelSet{"alertname": "X", "instance": "db-1", "env": "prod"}, []string{regex.ID}},
		{"not-equal excludes", 0, "a", model.LabelSet{"alertname": "X", "instance": "db-1", "env": "dev"}, nil},
		{"pending does not mute", 0, "a", model.LabelSet{"alertname": "Later"}, nil},
		{"pending becomes active", 31 * time.Minute, "a", model.LabelSet{"alertname": "Later"}, []string{later.ID}},
		{"other tenant's silence", 0, "a", model.LabelSet{"alertname": "Bar"}, nil},
		{"expired", time.Hour, "a", model.LabelSet{"alertname": "Foo"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now = t0.Add(c.at)
			got := s.Mutes(c.tenant, c.ls)
			if len(got) != len(c.want) || (len(got) == 1 && got[0] != c.want[0]) {
				t.Fatalf("Mutes = %v, want %v", got, c.want)
			}
		})
	}

	now = t0.Add(10 * time.Minute)
	if _, err := s.Expire(ctx, "a", byName.ID); err != nil {
		t.Fatal(err)
	}
	if got := s.Mutes("a", model.LabelSet{"alertname": "Foo"}); len(got) != 0 {
		t.Fatalf("expired silence still mutes: %v", got)
	}
	if _, err := s.Expire(ctx, "a", byName.ID); !errors.Is(err, ErrExpired) {
		t.Fatalf("expire twice: %v", err)
	}
	if _, err := s.Expire(ctx, "b", byName.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expire another tenant's silence: %v", err)
	}
	now = t0.Add(DefaultRetention)
	if l, _ := s.List(ctx, "a"); len(l) != 3 {
		t.Fatalf("within retention the expired silence is listed: %d", len(l))
	}
	now = t0.Add(DefaultRetention + 2*time.Hour)
	if l, _ := s.List(ctx, "a"); len(l) != 0 {
		t.Fatalf("after retention nothing is listed: %d", len(l))
	}
}

func TestInvalid(t *testing.T) {
	s := NewMemory(WithClock(func() time.Time { return t0 }))
	for name, sil := range map[string]*Silence{
		"no matchers":       {Tenant: "a", EndsAt: t0.Add(time.Hour)},
		"matches everyone":  {Tenant: "a", Matchers: []Matcher{{Name: "x", Value: ".*", IsRegex: true, IsEqual: true}}, EndsAt: t0.Add(time.Hour)},
		"bad regex":         {Tenant: "a", Matchers: []Matcher{{Name: "x", Value: "(", IsRegex: true, IsEqual: true}}, EndsAt: t0.Add(time.Hour)},
		"ends before start": {Tenant: "a", Matchers: []Matcher{eq("x", "y")}, StartsAt: t0.Add(time.Hour), EndsAt: t0.Add(time.Minute)},
		// 40k of '<', 6 bytes each in JSON: past MaxBytes encoded, not before.
		"larger than MaxBytes": {Tenant: "a", Matchers: []Matcher{eq("x", "y")}, Comment: strings.Repeat("<", 40<<10), EndsAt: t0.Add(time.Hour)},
	} {
		if _, err := s.Set(context.Background(), sil); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}

// A silence written through one store reaches another store's Mutes (the
// engine) through the KV watch.
func TestKVAcrossStores(t *testing.T) {
	b := bustest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api, err := NewKV(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := NewKV(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(ctx); err != nil {
		t.Fatal(err)
	}
	sil, err := api.Set(ctx, &Silence{Tenant: "a", Matchers: []Matcher{eq("alertname", "Foo")}, EndsAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(eng.Mutes("a", model.LabelSet{"alertname": "Foo"})) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the other store never saw the silence")
		}
		time.Sleep(5 * time.Millisecond)
	}
	got, err := eng.Get(ctx, "a", sil.ID)
	if err != nil || got.Matchers[0] != eq("alertname", "Foo") {
		t.Fatalf("get: %+v %v", got, err)
	}
	if l, err := api.List(ctx, "b"); err != nil || len(l) != 0 {
		t.Fatalf("tenant b sees %d silences (%v)", len(l), err)
	}
}

func TestSortAsAlertmanager(t *testing.T) {
	at := func(start, end time.Duration) *Silence {
		return &Silence{ID: start.String() + "/" + end.String(), StartsAt: t0.Add(start), EndsAt: t0.Add(end)}
	}
	ss := []*Silence{
		at(-3*time.Hour, -2*time.Hour),  // expired earlier
		at(time.Hour, 3*time.Hour),      // pending, starts later
		at(-time.Hour, 2*time.Hour),     // active, ends later
		at(-2*time.Hour, -time.Hour),    // expired later
		at(30*time.Minute, 4*time.Hour), // pending, starts sooner
		at(-time.Hour, time.Hour),       // active, ends sooner
	}
	Sort(ss, t0)
	want := []string{"-1h0m0s/1h0m0s", "-1h0m0s/2h0m0s", "30m0s/4h0m0s", "1h0m0s/3h0m0s", "-2h0m0s/-1h0m0s", "-3h0m0s/-2h0m0s"}
	for i, s := range ss {
		if s.ID != want[i] {
			t.Fatalf("position %d: got %s, want %s (all: %v)", i, s.ID, want[i], ss)
		}
	}
}

// SetLimited counts active and pending silences: a new one over the limit is
// refused, updating a live one is not a new one, expiring one makes room,
// and reviving an expired id counts again. Other tenants have their own count.
func TestSetLimited(t *testing.T) {
	s := NewMemory(WithClock(func() time.Time { return t0 }))
	ctx := context.Background()
	mk := func(tenant, v string) *Silence {
		return &Silence{Tenant: tenant, Matchers: []Matcher{{Name: "a", Value: v, IsEqual: true}}, EndsAt: t0.Add(time.Hour)}
	}
	first, err := s.SetLimited(ctx, mk("x", "1"), 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetLimited(ctx, mk("x", "2"), 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetLimited(ctx, mk("x", "3"), 2); !errors.Is(err, ErrLimit) {
		t.Fatalf("third silence with limit 2: %v, want ErrLimit", err)
	}
	upd := *first
	upd.Comment, upd.EndsAt = "longer", t0.Add(2*time.Hour)
	if _, err := s.SetLimited(ctx, &upd, 2); err != nil {
		t.Fatalf("updating a live silence at the limit: %v", err)
	}
	if _, err := s.SetLimited(ctx, mk("y", "1"), 2); err != nil {
		t.Fatalf("another tenant: %v", err)
	}
	if _, err := s.Expire(ctx, "x", first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetLimited(ctx, mk("x", "3"), 2); err != nil {
		t.Fatalf("after expiring one: %v", err)
	}
	revive := *first
	revive.EndsAt = t0.Add(time.Hour)
	if _, err := s.SetLimited(ctx, &revive, 2); !errors.Is(err, ErrLimit) {
		t.Fatalf("reviving an expired id at the limit: %v, want ErrLimit", err)
	}
}

// Updating an active silence as amtool and Grafana do — the same matchers,
// its startsAt sent back to the millisecond, a new endsAt — updates it in
// place: the same id, its original start. Compared to the nanosecond, every
// such edit expired it and made a new one (`amtool silence update` printed a
// new id, links to the old one broke), and an update in place moved its
// start to now. Other matchers still make a new silence, the old expired.
func TestUpdateActiveSilenceInPlace(t *testing.T) {
	now := t0.Add(123456789 * time.Nanosecond)
	s := NewMemory(WithClock(func() time.Time { return now }))
	ctx := context.Background()
	sil, err := s.Set(ctx, &Silence{Tenant: "a", Matchers: []Matcher{eq("alertname", "Foo")}, StartsAt: now, EndsAt: now.Add(time.Hour), CreatedBy: "me"})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Minute)
	edit := *sil
	edit.StartsAt = sil.StartsAt.Truncate(time.Millisecond) // as amtool sends it back
	edit.EndsAt = now.Add(3 * time.Hour)
	got, err := s.Set(ctx, &edit)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != sil.ID || !got.StartsAt.Equal(sil.StartsAt) || !got.EndsAt.Equal(edit.EndsAt) {
		t.Fatalf("update: id %s start %v end %v; want id %s, start %v kept, end %v", got.ID, got.StartsAt, got.EndsAt, sil.ID, sil.StartsAt, edit.EndsAt)
	}
	other := *got
	other.Matchers = []Matcher{eq("alertname", "Bar")}
	replaced, err := s.Set(ctx, &other)
	if err != nil {
		t.Fatal(err)
	}
	if replaced.ID == sil.ID {
		t.Fatal("other matchers updated the silence in place; want a new one")
	}
	if old, err := s.be.Get(ctx, "a", sil.ID); err != nil || old.State(now) != StateExpired {
		t.Fatalf("the replaced silence: %+v, %v; want it expired", old, err)
	}
}

// Posting a silence with the id of an expired one creates a new silence
// (Alertmanager's canUpdate); the expired one keeps its author, comment and
// times. A pending silence whose matchers change is replaced, not edited.
func TestExpiredOrPendingSilenceIsNotRewritten(t *testing.T) {
	now := t0
	s := NewMemory(WithClock(func() time.Time { return now }))
	ctx := context.Background()
	sil, err := s.Set(ctx, &Silence{Tenant: "a", Matchers: []Matcher{eq("alertname", "Foo")}, EndsAt: now.Add(time.Hour), CreatedBy: "alice", Comment: "maintenance"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expire(ctx, "a", sil.ID); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	reuse := Silence{ID: sil.ID, Tenant: "a", Matchers: []Matcher{eq("alertname", "Foo")}, EndsAt: now.Add(time.Hour), CreatedBy: "bob", Comment: "again"}
	got, err := s.Set(ctx, &reuse)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID == sil.ID {
		t.Fatal("the expired silence was rewritten in place; want a new silence")
	}
	if old, err := s.be.Get(ctx, "a", sil.ID); err != nil || old.State(now) != StateExpired || old.CreatedBy != "alice" || old.Comment != "maintenance" {
		t.Fatalf("the expired silence: %+v, %v; want it kept as it was", old, err)
	}

	pending, err := s.Set(ctx, &Silence{Tenant: "a", Matchers: []Matcher{eq("alertname", "Bar")}, StartsAt: now.Add(time.Hour), EndsAt: now.Add(2 * time.Hour), CreatedBy: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	later := *pending
	later.StartsAt = now.Add(90 * time.Minute)
	if moved, err := s.Set(ctx, &later); err != nil || moved.ID != pending.ID {
		t.Fatalf("moving a pending silence's start: %+v, %v; want it updated in place", moved, err)
	}
	other := later
	other.Matchers = []Matcher{eq("alertname", "Baz")}
	replaced, err := s.Set(ctx, &other)
	if err != nil {
		t.Fatal(err)
	}
	if replaced.ID == pending.ID {
		t.Fatal("a pending silence's matchers were edited in place; want a new silence")
	}
	if old, err := s.be.Get(ctx, "a", pending.ID); err != nil || old.State(now) != StateExpired || old.Matchers[0].Value != "Bar" {
		t.Fatalf("the replaced pending silence: %+v, %v; want it expired with its matchers", old, err)
	}
}
