package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/engine/silence"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// Monday 2026-01-05 10:00 UTC.
var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func loadTenant(t testing.TB, name, yml string) *ruleset.Tenant {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(p, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	tn, errs := ruleset.LoadFiles(name, []string{p})
	if len(errs) > 0 {
		t.Fatalf("load rules: %v", errs)
	}
	return tn
}

// step is one input: an alert (labels as "k=v,k=v"), ending at end after
// t0 if non-zero (negative: resolved now), or a silence.
type step struct {
	at      time.Duration
	alert   string
	end     time.Duration
	silence []silence.Matcher
	// old: the alert started at t0, not at `at`.
	old bool
}

func alertOf(spec string, at time.Time, end time.Duration) *klaxonv1.Alert {
	ls := map[string]string{}
	for _, kv := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(kv, "=")
		ls[k] = v
	}
	a := &klaxonv1.Alert{Labels: ls, StartsAt: timestamppb.New(at), Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING}
	switch {
	case end < 0:
		a.EndsAt = timestamppb.New(at)
		a.Status = klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED
	case end > 0:
		a.EndsAt = timestamppb.New(t0.Add(end))
	}
	return a
}

// describe renders a notification as "<offset> <receiver> <status> [ids]",
// ids being the alerts' "id" labels with a "-" suffix when resolved.
func describe(n *klaxonv1.Notification) string {
	var ids []string
	for _, a := range n.Alerts {
		id := a.Labels["id"]
		if a.Status == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED {
			id += "-"
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	st := "firing"
	if n.Status == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED {
		st = "resolved"
	}
	return fmt.Sprintf("%v %s %s [%s]", n.CreatedAt.AsTime().Sub(t0), n.Receiver, st, strings.Join(ids, " "))
}

func runSim(t *testing.T, yml string, steps []step, until time.Duration) []string {
	t.Helper()
	sim, err := NewSim(loadTenant(t, "team-a", yml), t0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		for _, n := range sim.Advance(t0.Add(s.at)) {
			got = append(got, describe(n))
		}
		if s.silence != nil {
			sim.now = t0.Add(s.at)
			if _, err := sim.Silences.Set(context.Background(), &silence.Silence{Tenant: "team-a", Matchers: s.silence,
				EndsAt: t0.Add(s.at + 24*time.Hour), CreatedBy: "test"}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		a := alertOf(s.alert, t0.Add(s.at), s.end)
		if s.old {
			a.StartsAt = timestamppb.New(t0)
		}
		sim.Ingest(t0.Add(s.at), &klaxonv1.Envelope{Tenant: "team-a", Payload: &klaxonv1.Envelope_Alert{Alert: a}})
	}
	for _, n := range sim.Advance(t0.Add(until)) {
		got = append(got, describe(n))
	}
	return got
}

const baseRoute = `
global:
  resolve_timeout: 1m
receivers:
  - name: default
    webhook_configs: [{url: "http://127.0.0.1:1/", send_resolved: true}]
  - name: quiet
    webhook_configs: [{url: "http://127.0.0.1:1/", send_resolved: false}]
  - name: db
    webhook_configs: [{url: "http://127.0.0.1:1/", send_resolved: true}]
  - name: ops
    webhook_configs: [{url: "http://127.0.0.1:1/", send_resolved: true}]
`

func TestDispatcherTiming(t *testing.T) {
	timing := baseRoute + `
route:
  receiver: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
`
	cases := []struct {
		name  string
		yml   string
		steps []step
		until time.Duration
		want  []string
		// unordered: notifications due at the same instant, in any order.
		unordered bool
	}{
		{
			name: "group_wait then group_interval only on change then repeat_interval",
			yml:  timing,
			steps: []step{
				{at: 0, alert: "alertname=A,id=1", end: 3 * time.Hour},
				{at: time.Minute, alert: "alertname=A,id=2", end: 3 * time.Hour},
			},
			until: 75 * time.Minute,
			want:  []string{"30s default firing [1]", "5m30s default firing [1 2]", "1h10m30s default firing [1 2]"},
		},
		{
			name: "resolved sent once with send_resolved, then the group is gone",
			yml:  timing,
			steps: []step{
				{at: 0, alert: "alertname=A,id=1", end: 3 * time.Hour},
				{at: 2 * time.Minute, alert: "alertname=A,id=1", end: -1},
				{at: 20 * time.Minute, alert: "alertname=A,id=3", end: 3 * time.Hour},
			},
			until: 30 * time.Minute,
			want:  []string{"30s default resolved [1-]", "20m30s default firing [3]"}[:0],
		},
		{
			name: "alert older than group_wait flushes its new group at once",
			yml:  timing,
			steps: []step{
				{at: 10 * time.Minute, alert: "alertname=A,id=1", end: 3 * time.Hour, old: true},
			},
			until: 11 * time.Minute,
			want:  []string{"10m0s default firing [1]"},
		},
		{
			name: "resolve_timeout resolves an alert without endsAt",
			yml:  timing,
			steps: []step{
				{at: 0, alert: "alertname=A,id=1"},
			},
			until: 20 * time.Minute,
			want:  []string{"30s default firing [1]", "5m30s default resolved [1-]"},
		},
		{
			name: "without send_resolved nothing is sent about resolved alerts",
			yml:  strings.Replace(timing, "receiver: default\n  group_by", "receiver: quiet\n  group_by", 1),
			steps: []step{
				{at: 0, alert: "alertname=A,id=1", end: 3 * time.Hour},
				{at: 0, alert: "alertname=A,id=2", end: 3 * time.Hour},
				{at: time.Minute, alert: "alertname=A,id=2", end: -1},
				{at: 6 * time.Minute, alert: "alertname=A,id=1", end: -1},
			},
			until: 20 * time.Minute,
			want:  []string{"30s quiet firing [1 2]"},
		},
		{
			name: "group_by ... makes a group per alert",
			yml:  strings.Replace(timing, "group_by: [alertname]", "group_by: ['...']", 1),
			steps: []step{
				{at: 0, alert: "alertname=A,id=1", end: 3 * time.Hour},
				{at: 0, alert: "alertname=A,id=2", end: 3 * time.Hour},
			},
			until: time.Minute,
			want:  []string{"30s default firing [1]", "30s default firing [2]"},
		},
		{
			name: "continue sends to every matching sibling; first match wins otherwise",
			yml: baseRoute + `
route:
  receiver: default
  group_wait: 10s
  routes:
    - matchers: ['team="db"']
      receiver: db
      continue: true
    - match: {severity: critical}
      receiver: ops
    - match_re: {team: "d.*"}
      receiver: quiet
`,
			steps: []step{
				{at: 0, alert: "alertname=A,id=1,team=db,severity=critical", end: 3 * time.Hour},
				{at: 0, alert: "alertname=B,id=2,team=dx", end: 3 * time.Hour},
				{at: 0, alert: "alertname=C,id=3", end: 3 * time.Hour},
			},
			until:     time.Minute,
			want:      []string{"10s db firing [1]", "10s default firing [3]", "10s ops firing [1]", "10s quiet firing [2]"},
			unordered: true,
		},
		{
			name: "inhibition by equal labels; a two-sided match does not inhibit itself",
			yml: timing + `
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity=~"warning|critical"']
    equal: [cluster]
`,
			steps: []step{
				{at: 0, alert: "alertname=A,id=1,severity=critical,cluster=x", end: 3 * time.Hour},
				{at: 0, alert: "alertname=A,id=2,severity=warning,cluster=x", end: 3 * time.Hour},
				{at: 0, alert: "alertname=A,id=3,severity=warning,cluster=y", end: 3 * time.Hour},
			},
			until: time.Minute,
			want:  []string{"30s default firing [1 3]"},
		},
		{
			name: "a target resolving while inhibited is dropped without a resolved notification",
			yml: timing + `
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [cluster]
`,
			steps: []step{
				{at: 0, alert: "alertname=A,id=2,severity=warning,cluster=x", end: 3 * time.Hour},
				{at: time.Minute, alert: "alertname=A,id=1,severity=critical,cluster=x", end: 3 * time.Hour},
				{at: 6 * time.Minute, alert: "alertname=A,id=2,severity=warning,cluster=x", end: -1},
				{at: 20 * time.Minute, alert: "alertname=A,id=1,severity=critical,cluster=x", end: -1},
			},
			until: 40 * time.Minute,
			want:  []string{"30s default firing [2]", "5m30s default firing [1]", "20m30s default resolved [1-]"},
		},
		{
			name: "silence mutes matching alerts",
			yml:  timing,
			steps: []step{
				{at: 0, silence: []silence.Matcher{{Name: "id", Value: "2", IsEqual: true}}},
				{at: 0, alert: "alertname=A,id=1", end: 3 * time.Hour},
				{at: 0, alert: "alertname=A,id=2", end: 3 * time.Hour},
				{at: 0, alert: "alertname=B,id=3", end: 3 * time.Hour},
				{at: 0, silence: []silence.Matcher{{Name: "alertname", Value: "B|C", IsRegex: true, IsEqual: true}}},
			},
			until: time.Minute,
			want:  []string{"30s default firing [1]"},
		},
		{
			name: "mute_time_intervals hold notifications back until the interval ends",
			yml: timing + `
time_intervals:
  - name: morning
    time_intervals: [{times: [{start_time: "10:00", end_time: "10:07"}]}]
`,
			steps: []step{
				{at: 0, alert: "alertname=A,id=1", end: 3 * time.Hour},
			},
			until: 20 * time.Minute,
			want:  []string{"10m30s default firing [1]"},
		},
		{
			name: "a resolution muted by a time interval leaves the log: the same alert firing again waits for repeat_interval",
			yml: timing + `
time_intervals:
  - name: later
    time_intervals: [{times: [{start_time: "10:05", end_time: "10:30"}]}]
`,
			steps: []step{
				{at: 0, alert: "alertname=A,id=1", end: 3 * time.Hour},
				{at: 6 * time.Minute, alert: "alertname=A,id=1", end: -1},
				{at: 40 * time.Minute, alert: "alertname=A,id=1", end: 3 * time.Hour},
			},
			until: 80 * time.Minute,
			want:  []string{"30s default firing [1]", "1h5m30s default firing [1]"},
		},
		{
			name: "active_time_intervals send only inside the interval",
			yml: timing + `
time_intervals:
  - name: weekend
    time_intervals: [{weekdays: [saturday, sunday]}]
`,
			steps: []step{
				{at: 0, alert: "alertname=A,id=1", end: 3 * time.Hour},
			},
			until: 20 * time.Minute,
			want:  nil,
		},
	}
	// Wire the intervals into the routes of the last three cases.
	cases[len(cases)-2].yml = strings.Replace(cases[len(cases)-2].yml, "repeat_interval: 1h", "repeat_interval: 1h\n  routes: [{matchers: [alertname=A], mute_time_intervals: [later]}]", 1)
	cases[len(cases)-3].yml = strings.Replace(cases[len(cases)-3].yml, "repeat_interval: 1h", "repeat_interval: 1h\n  routes: [{matchers: [alertname=A], mute_time_intervals: [morning]}]", 1)
	cases[len(cases)-1].yml = strings.Replace(cases[len(cases)-1].yml, "repeat_interval: 1h", "repeat_interval: 1h\n  routes: [{matchers: [alertname=A], active_time_intervals: [weekend]}]", 1)
	cases[1].want = []string{"30s default firing [1]", "5m30s default resolved [1-]", "20m30s default firing [3]"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := runSim(t, c.yml, c.steps, c.until)
			if c.unordered {
				slices.Sort(got)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("notifications\n got %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestTenantsAreIsolated(t *testing.T) {
	yml := baseRoute + "route: {receiver: default, group_by: [alertname], group_wait: 10s}\n"
	ta, tb := loadTenant(t, "a", yml), loadTenant(t, "b", yml)
	sil := silence.NewMemory(silence.WithClock(func() time.Time { return t0 }))
	d := NewDispatcher(DispatcherConfig{Silences: sil, Rules: func(n string) *ruleset.Tenant {
		return map[string]*ruleset.Tenant{"a": ta, "b": tb}[n]
	}})
	ctx := context.Background()
	if _, err := sil.Set(ctx, &silence.Silence{Tenant: "a", Matchers: []silence.Matcher{{Name: "alertname", Value: "A", IsEqual: true}}, EndsAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []string{"a", "b"} {
		if err := d.Receive(ctx, tn, alertOf("alertname=A,id=1", t0, time.Hour), t0); err != nil {
			t.Fatal(err)
		}
	}
	ns, err := d.Tick(ctx, t0.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 || ns[0].Tenant != "b" {
		t.Fatalf("want one notification for tenant b (a's alert is silenced by a's silence), got %v", ns)
	}
}

// A rules reload that moves a route regroups its alerts under the new tree;
// a group with the same key and receiver keeps its notification log.
func TestReloadRegroups(t *testing.T) {
	before := loadTenant(t, "a", baseRoute+`
route:
  receiver: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
    - matchers: [team=db]
      receiver: db
`)
	after := loadTenant(t, "a", baseRoute+`
route:
  receiver: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
    - matchers: [team=web]
      receiver: ops
    - matchers: [team=db]
      receiver: db
    - matchers: [team=x]
      receiver: ops
`)
	cur := before
	d := NewDispatcher(DispatcherConfig{Rules: func(string) *ruleset.Tenant { return cur }})
	ctx := context.Background()
	must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=1,team=db", t0, 3*time.Hour), t0))
	first, _ := d.Tick(ctx, t0.Add(30*time.Second))
	if len(first) != 1 || first[0].Receiver != "db" {
		t.Fatalf("first flush: %v", first)
	}
	must(t, d.Ack(ctx, first...)) // published
	cur = after                   // the db route is now the second child: another route id, same key
	must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=2,team=x", t0.Add(time.Minute), 3*time.Hour), t0.Add(time.Minute)))
	ns, err := d.Tick(ctx, t0.Add(2*time.Minute))
	must(t, err)
	var got []string
	for _, n := range ns {
		got = append(got, describe(n))
	}
	if !slices.Equal(got, []string{"2m0s ops firing [2]"}) {
		t.Fatalf("after reload: %q (the db group must not re-notify alert 1)", got)
	}
	ns, err = d.Tick(ctx, t0.Add(10*time.Minute))
	must(t, err)
	for _, n := range ns {
		if n.Receiver == "db" {
			t.Fatalf("db group re-notified after the reload: %s", describe(n))
		}
	}
}

// A user who changes a route's receiver or group_by and reloads relies on
// the route's alerts going, from then on, to the new receiver in the new
// groups, as after an Alertmanager reload, which builds its aggregation
// groups anew. The route kept its id (matchers and position), so the
// groups were kept as they were: the old receiver, maybe deleted, was
// still notified every repeat_interval, each re-sent alert went to a new
// group too, and a new receiver alone never got anything. The same held
// for a route that, with a child route added, no longer takes an alert.
// A group the change leaves as it was keeps its notification log: it is
// not notified again before its repeat_interval.
func TestReloadRebuildsChangedGroups(t *testing.T) {
	const before = baseRoute + `
route:
  receiver: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
`
	cases := []struct {
		name  string
		after string
		want  []string // after the reload at 1m
	}{
		{
			name:  "receiver changed",
			after: strings.Replace(before, "receiver: default", "receiver: ops", 1),
			want:  []string{"1m0s ops firing [1 2]", "1h6m0s ops firing [1 2]", "2h11m0s ops firing [1 2]"},
		},
		{
			name:  "group_by changed",
			after: strings.Replace(before, "group_by: [alertname]", "group_by: [alertname, id]", 1),
			want: []string{"1m0s default firing [1]", "1m0s default firing [2]",
				"1h6m0s default firing [1]", "1h6m0s default firing [2]", "2h11m0s default firing [1]", "2h11m0s default firing [2]"},
		},
		{
			name:  "group_by and receiver changed",
			after: strings.Replace(strings.Replace(before, "group_by: [alertname]", "group_by: ['...']", 1), "receiver: default", "receiver: ops", 1),
			want: []string{"1m0s ops firing [1]", "1m0s ops firing [2]",
				"1h6m0s ops firing [1]", "1h6m0s ops firing [2]", "2h11m0s ops firing [1]", "2h11m0s ops firing [2]"},
		},
		{
			// The root's group keeps its key and receiver, and so its log:
			// alert 1 was notified, and is again at its repeat_interval.
			name:  "a child route takes one of the alerts",
			after: before + "  routes: [{matchers: [id=2], receiver: db}]\n",
			want: []string{"1m0s db firing [2]", "1h1m0s default firing [1]",
				"1h6m0s db firing [2]", "2h6m0s default firing [1]", "2h11m0s db firing [2]"},
		},
		{
			name:  "group_by changed, but not the groups",
			after: strings.Replace(before, "group_by: [alertname]", "group_by: [alertname, team]", 1),
			want:  []string{"1h5m30s default firing [1 2]", "2h10m30s default firing [1 2]"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, store := range []string{"live", "restart"} {
				st := NewMemStore()
				cur := loadTenant(t, "a", before)
				d := NewDispatcher(DispatcherConfig{Store: st, Rules: func(string) *ruleset.Tenant { return cur }})
				ctx := context.Background()
				var got []string
				tick := func(at time.Time) {
					t.Helper()
					ns, err := d.Tick(ctx, at)
					must(t, err)
					must(t, d.Ack(ctx, ns...))
					for _, n := range ns {
						got = append(got, describe(n))
					}
				}
				// flushBefore ticks at every flush due before at.
				flushBefore := func(at time.Time) {
					t.Helper()
					for next, ok := d.NextDue(); ok && next.Before(at); next, ok = d.NextDue() {
						tick(next)
					}
				}
				// Prometheus re-sends each firing alert every minute.
				resend := func(at time.Time) {
					t.Helper()
					for _, id := range []string{"1", "2"} {
						must(t, d.Receive(ctx, "a", alertOf("alertname=A,id="+id, t0, 0), at))
					}
				}
				resend(t0)
				flushBefore(t0.Add(time.Minute))
				if want := []string{"30s default firing [1 2]"}; !slices.Equal(got, want) {
					t.Fatalf("before the reload: %q, want %q", got, want)
				}
				got = nil
				cur = loadTenant(t, "a", c.after)
				if store == "restart" {
					// Reloaded while the engine was down.
					d = NewDispatcher(DispatcherConfig{Store: st, Rules: func(string) *ruleset.Tenant { return cur }})
					must(t, d.Load(ctx))
				}
				for m := 1; m <= 150; m++ {
					at := t0.Add(time.Duration(m) * time.Minute)
					flushBefore(at)
					resend(at)
					tick(at)
				}
				slices.Sort(got)
				want := slices.Sorted(slices.Values(c.want))
				if !slices.Equal(got, want) {
					t.Errorf("%s: notifications after the reload\n got %q\nwant %q", store, got, want)
				}
			}
		})
	}
}

// max_active_alerts: over the limit a new alert is refused, while held
// alerts keep updating and resolving; another tenant is not affected, and
// once alerts resolve and leave, new ones are taken in again.
func TestMaxActiveAlerts(t *testing.T) {
	yml := baseRoute + "route: {receiver: default, group_by: ['...'], group_wait: 0s, group_interval: 1m}\n"
	ta, tb := loadTenant(t, "a", yml), loadTenant(t, "b", yml)
	d := NewDispatcher(DispatcherConfig{
		Rules:           func(n string) *ruleset.Tenant { return map[string]*ruleset.Tenant{"a": ta, "b": tb}[n] },
		MaxActiveAlerts: func(n string) int { return map[string]int{"a": 2}[n] },
	})
	ctx := context.Background()
	must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=1", t0, time.Hour), t0))
	must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=2", t0, time.Hour), t0))
	if err := d.Receive(ctx, "a", alertOf("alertname=A,id=3", t0, time.Hour), t0); !errors.Is(err, ErrTooManyAlerts) {
		t.Fatalf("third alert of tenant a: %v, want ErrTooManyAlerts", err)
	}
	must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=2", t0, 2*time.Hour), t0)) // a held alert updates
	must(t, d.Receive(ctx, "b", alertOf("alertname=A,id=3", t0, time.Hour), t0))   // b has no limit
	ns, err := d.Tick(ctx, t0)
	must(t, err)
	must(t, d.Ack(ctx, ns...))
	if len(ns) != 3 {
		t.Fatalf("want 3 notifications (a: 1 and 2, b: 3), got %d", len(ns))
	}
	// Alert 1 resolves; after the flush that reports it, it leaves and
	// makes room.
	must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=1", t0, -1), t0.Add(time.Minute)))
	ns, err = d.Tick(ctx, t0.Add(time.Minute))
	must(t, err)
	must(t, d.Ack(ctx, ns...))
	must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=3", t0.Add(time.Minute), time.Hour), t0.Add(time.Minute)))
}

// A group takes new alerts until they take MaxGroupBytes: the next new one
// is refused for that group (ErrGroupFull) but taken into the other groups
// it belongs to; its held alerts still update, other groups are not
// affected, and a resolved alert that left makes room again.
func TestMaxGroupBytes(t *testing.T) {
	yml := baseRoute + `route:
  receiver: default
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  routes:
    - {receiver: default, matchers: ['team="db"'], continue: true}
    - {receiver: default}
`
	tn := loadTenant(t, "a", yml)
	one := alertBytes(fromProto(alertOf("alertname=A,id=1", t0, time.Hour), t0, 0, false))
	st := NewMemStore()
	d := NewDispatcher(DispatcherConfig{Store: st, Rules: func(string) *ruleset.Tenant { return tn }, MaxGroupBytes: 3*one + one/2})
	ctx := context.Background()
	for id := 1; id <= 3; id++ {
		must(t, d.Receive(ctx, "a", alertOf(fmt.Sprintf("alertname=A,id=%d", id), t0, time.Hour), t0))
	}
	err := d.Receive(ctx, "a", alertOf("alertname=A,id=4", t0, time.Hour), t0)
	if !errors.Is(err, ErrGroupFull) || !strings.Contains(err.Error(), `{alertname="A"}`) {
		t.Fatalf("fourth alert of a group with room for three: %v, want ErrGroupFull naming the group", err)
	}
	must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=2", t0, 2*time.Hour), t0)) // a held alert updates
	must(t, d.Receive(ctx, "a", alertOf("alertname=B,id=1", t0, time.Hour), t0))   // another group
	// team=db matches the first route (continue) and the second: the
	// second's group A is full, the first's is not.
	err = d.Receive(ctx, "a", alertOf("alertname=A,id=5,team=db", t0, time.Hour), t0)
	if !errors.Is(err, ErrGroupFull) {
		t.Fatalf("alert of a full group and a free one: %v, want ErrGroupFull", err)
	}
	ns, err := d.Tick(ctx, t0)
	must(t, err)
	must(t, d.Ack(ctx, ns...))
	var got []string
	for _, n := range ns {
		got = append(got, n.GroupKey+" "+describe(n))
	}
	slices.Sort(got)
	want := []string{
		`{}/{team="db"}:{alertname="A"} 0s default firing [5]`,
		`{}/{}:{alertname="A"} 0s default firing [1 2 3]`,
		`{}/{}:{alertname="B"} 0s default firing [1]`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("notifications\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Alert 1 resolves; once the flush has reported it, it leaves the
	// group, and alert 4 fits.
	must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=1", t0, -1), t0.Add(time.Minute)))
	ns, err = d.Tick(ctx, t0.Add(time.Minute))
	must(t, err)
	must(t, d.Ack(ctx, ns...))
	must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=4", t0.Add(time.Minute), time.Hour), t0.Add(time.Minute)))
	// After a restart the stored group is sized again: still full.
	d2 := NewDispatcher(DispatcherConfig{Store: st, Rules: func(string) *ruleset.Tenant { return tn }, MaxGroupBytes: 3*one + one/2})
	must(t, d2.Load(ctx))
	if err := d2.Receive(ctx, "a", alertOf("alertname=A,id=6", t0.Add(time.Minute), time.Hour), t0.Add(time.Minute)); !errors.Is(err, ErrGroupFull) {
		t.Fatalf("after a restart, a new alert of the full group: %v, want ErrGroupFull", err)
	}
}

// A receiver without integrations (Alertmanager's "null" receiver) routes
// and groups as usual, but the server sends it nothing and keeps no
// notification log for it; its resolved alerts leave and the group ends.
func TestSilentReceiverSendsNothing(t *testing.T) {
	yml := baseRoute + `  - name: "null"
route:
  receiver: default
  group_by: ['...']
  group_wait: 0s
  group_interval: 1m
  routes:
    - {receiver: "null", matchers: ['severity="none"']}
`
	tn := loadTenant(t, "a", yml)
	for _, skip := range []bool{true, false} {
		st := NewMemStore()
		d := NewDispatcher(DispatcherConfig{Store: st, SkipSilentReceivers: skip, Rules: func(string) *ruleset.Tenant { return tn }})
		ctx := context.Background()
		must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=1,severity=none", t0, time.Hour), t0))
		must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=2", t0, time.Hour), t0))
		ns, err := d.Tick(ctx, t0)
		must(t, err)
		var got []string
		for _, n := range ns {
			got = append(got, describe(n))
		}
		want := []string{"0s default firing [2]"}
		if !skip {
			want = []string{"0s default firing [2]", "0s null firing [1]"}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("skip=%v: notifications %q, want %q", skip, got, want)
		}
		must(t, d.Ack(ctx, ns...))
		if !skip {
			continue
		}
		must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=1,severity=none", t0, -1), t0.Add(time.Second)))
		ns, err = d.Tick(ctx, t0.Add(time.Minute))
		must(t, err)
		if len(ns) != 0 {
			t.Fatalf("resolved alert of the null receiver: %d notifications, want none", len(ns))
		}
		gs, _ := st.Load(ctx)
		if len(gs) != 1 || gs[0].Receiver != "default" {
			t.Fatalf("the null receiver's group must end once its alert resolved; stored groups: %d", len(gs))
		}
	}
}

// A notification decided and not yet published (NOTIFY unavailable) when a
// reload moves its group in the tree (a sibling route inserted before it:
// same receiver, same group key, another route id) is published by the next
// tick, once; the group keeps its log, so it is not notified again before
// repeat_interval. Before, the regroup dropped it, the log counted it as
// sent, and the receiver first heard of the alert a repeat_interval late.
func TestReloadKeepsAnUnpublishedNotification(t *testing.T) {
	route := func(extra string) string {
		return baseRoute + `
route:
  receiver: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:` + extra + `
    - matchers: [team=db]
      receiver: db
`
	}
	before, after := loadTenant(t, "a", route("")), loadTenant(t, "a", route(`
    - matchers: [team=web]
      receiver: ops`))
	cur := before
	d := NewDispatcher(DispatcherConfig{Rules: func(string) *ruleset.Tenant { return cur }})
	ctx := context.Background()
	must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=1,team=db", t0, 0), t0))
	ns, err := d.Tick(ctx, t0.Add(30*time.Second))
	must(t, err)
	if len(ns) != 1 || ns[0].Receiver != "db" {
		t.Fatalf("first flush: %d notifications, want the db one", len(ns))
	}
	// Not acked: its publish failed. The rules change.
	cur = after
	var sent []string
	for m := 1; m <= 120; m++ {
		at := t0.Add(time.Duration(m) * time.Minute)
		must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=1,team=db", t0, 0), at))
		ns, err := d.Tick(ctx, at)
		must(t, err)
		for _, n := range ns {
			sent = append(sent, n.Receiver+" "+n.IdempotencyKey)
		}
		must(t, d.Ack(ctx, ns...))
	}
	if len(sent) != 1 || !strings.HasPrefix(sent[0], "db ") {
		t.Fatalf("after the reload: %v, want the unpublished db notification once", sent)
	}
}
