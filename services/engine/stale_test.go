package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

const staleRules = baseRoute + `
route:
  receiver: default
  group_by: ['...']
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 1h
`

// flushed ticks at t0+at, acknowledges what it sent and describes it.
func flushed(t *testing.T, d *Dispatcher, at time.Duration) []string {
	t.Helper()
	ns, err := d.Tick(context.Background(), t0.Add(at))
	if err != nil {
		t.Fatal(err)
	}
	must(t, d.Ack(context.Background(), ns...))
	var out []string
	for _, n := range ns {
		out = append(out, describe(n))
	}
	return out
}

// The crash TestHAKill found: the engine stored a batch with a firing alert
// and died before acknowledging it. The alert's resolution, a newer
// message, was delivered and applied at once; the firing message came back
// only after AckWait. It must not fire the resolved alert again. A really
// new firing of the same alert still fires.
func TestRedeliveredFiringAfterItsResolutionIsRefused(t *testing.T) {
	tn := loadTenant(t, "a", staleRules)
	d := NewDispatcher(DispatcherConfig{Rules: func(string) *ruleset.Tenant { return tn }})
	ctx := context.Background()
	firing := alertOf("alertname=A,id=1", t0, 0)
	resolved := alertOf("alertname=A,id=1", t0, -1)
	must(t, d.ReceiveFrom(ctx, "a", firing, Origin{Seq: 10, ReceivedAt: t0}, t0))
	if got := flushed(t, d, 0); len(got) != 1 || got[0] != "0s default firing [1]" {
		t.Fatalf("first flush: %v", got)
	}
	must(t, d.ReceiveFrom(ctx, "a", resolved, Origin{Seq: 11, ReceivedAt: t0.Add(time.Second)}, t0.Add(time.Second)))
	if got := flushed(t, d, time.Minute+time.Second); len(got) != 1 || got[0] != "1m1s default resolved [1-]" {
		t.Fatalf("resolution: %v", got)
	}
	err := d.ReceiveFrom(ctx, "a", firing, Origin{Seq: 10, ReceivedAt: t0}, t0.Add(2*time.Minute))
	if !errors.Is(err, ErrStale) {
		t.Fatalf("redelivered firing message: %v, want ErrStale", err)
	}
	if got := flushed(t, d, 2*time.Minute); len(got) != 0 {
		t.Fatalf("redelivered firing message notified: %v", got)
	}
	// The same alert firing anew, in a newer message.
	again := alertOf("alertname=A,id=1", t0.Add(3*time.Minute), 0)
	must(t, d.ReceiveFrom(ctx, "a", again, Origin{Seq: 12, ReceivedAt: t0.Add(3 * time.Minute)}, t0.Add(3*time.Minute)))
	if got := flushed(t, d, 3*time.Minute); len(got) != 1 || got[0] != "3m0s default firing [1]" {
		t.Fatalf("new firing: %v", got)
	}
}

// A held alert is not rolled back by an older message redelivered after a
// newer update; messages from a recreated stream (sequences from 1 again,
// but received later) are not old.
func TestOlderMessageDoesNotRollBackAnAlert(t *testing.T) {
	tn := loadTenant(t, "a", staleRules)
	st := NewMemStore()
	d := NewDispatcher(DispatcherConfig{Store: st, Rules: func(string) *ruleset.Tenant { return tn }})
	ctx := context.Background()
	v1 := alertOf("alertname=A,id=1", t0, 0)
	v1.Annotations = map[string]string{"v": "1"}
	v2 := alertOf("alertname=A,id=1", t0, 0)
	v2.Annotations = map[string]string{"v": "2"}
	must(t, d.ReceiveFrom(ctx, "a", v1, Origin{Seq: 20, ReceivedAt: t0}, t0))
	must(t, d.ReceiveFrom(ctx, "a", v2, Origin{Seq: 21, ReceivedAt: t0.Add(time.Second)}, t0.Add(time.Second)))
	if err := d.ReceiveFrom(ctx, "a", v1, Origin{Seq: 20, ReceivedAt: t0}, t0.Add(2*time.Second)); !errors.Is(err, ErrStale) {
		t.Fatalf("older message: %v, want ErrStale", err)
	}
	annotation := func() string {
		t.Helper()
		gs, err := st.Load(ctx)
		must(t, err)
		for _, g := range gs {
			for _, a := range g.Alerts.All() {
				return a.Annotations.Get("v")
			}
		}
		t.Fatal("alert not held")
		return ""
	}
	if got := annotation(); got != "2" {
		t.Fatalf("alert rolled back to v%s", got)
	}
	v3 := alertOf("alertname=A,id=1", t0, 0)
	v3.Annotations = map[string]string{"v": "3"}
	must(t, d.ReceiveFrom(ctx, "a", v3, Origin{Seq: 1, ReceivedAt: t0.Add(4 * time.Second)}, t0.Add(4*time.Second)))
	if got := annotation(); got != "3" {
		t.Fatalf("message from a recreated stream refused: alert is v%s", got)
	}
}

// The loss TestHAKill found on a CI machine: a group's firing notification
// was decided but not yet published (NOTIFY had no leader after a node was
// killed, or a new leader loaded it still pending) when its alert's
// resolution came due. The flush may not decide while a notification is
// pending, and it used to drop the resolved alert all the same, so the
// resolve was never sent. The resolved alert must stay in the group until a
// flush has dealt with it.
func TestResolutionWaitsForAnUnpublishedPredecessor(t *testing.T) {
	tn := loadTenant(t, "a", staleRules)
	d := NewDispatcher(DispatcherConfig{Store: NewMemStore(), Rules: func(string) *ruleset.Tenant { return tn }})
	ctx := context.Background()
	tick := func(at time.Duration) []*klaxonv1.Notification {
		t.Helper()
		ns, err := d.Tick(ctx, t0.Add(at))
		must(t, err)
		return ns
	}
	must(t, d.ReceiveFrom(ctx, "a", alertOf("alertname=A,id=1", t0, 0), Origin{Seq: 10, ReceivedAt: t0}, t0))
	firing := tick(0)
	if len(firing) != 1 || describe(firing[0]) != "0s default firing [1]" {
		t.Fatalf("first flush: %v", firing)
	}
	// Its publish fails; the resolution arrives and comes due.
	must(t, d.ReceiveFrom(ctx, "a", alertOf("alertname=A,id=1", t0, -1), Origin{Seq: 11, ReceivedAt: t0.Add(time.Second)}, t0.Add(time.Second)))
	again := tick(time.Minute + time.Second)
	if len(again) != 1 || again[0].IdempotencyKey != firing[0].IdempotencyKey {
		t.Fatalf("with the firing notification unpublished, the flush gave %v, want it again alone", again)
	}
	// Now it is published.
	must(t, d.Ack(ctx, again...))
	if got := flushed(t, d, 2*time.Minute+time.Second); len(got) != 1 || got[0] != "2m1s default resolved [1-]" {
		t.Fatalf("after the firing notification was published: %v, want the resolution", got)
	}
	if got := flushed(t, d, 4*time.Minute); len(got) != 0 {
		t.Fatalf("after the resolution: %v", got)
	}
}
