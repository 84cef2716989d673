package engine

import (
	"context"
	"testing"
	"time"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// Each notification of a group names the one before it, so notifiers can
// keep the group's order; the chain survives a flush that sends nothing.
func TestNotificationsChainToTheirPredecessor(t *testing.T) {
	tn := loadTenant(t, "a", staleRules)
	d := NewDispatcher(DispatcherConfig{Rules: func(string) *ruleset.Tenant { return tn }})
	ctx := context.Background()
	tick := func(at time.Duration) []*klaxonv1.Notification {
		t.Helper()
		ns, err := d.Tick(ctx, t0.Add(at))
		must(t, err)
		must(t, d.Ack(ctx, ns...))
		return ns
	}
	must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=1", t0, time.Hour), t0))
	first := tick(0)
	if len(first) != 1 || first[0].PreviousKey != "" || first[0].PreviousAt != nil {
		t.Fatalf("first flush: %v", first)
	}
	// Nothing new at the next group_interval: no notification, chain kept.
	if got := tick(time.Minute); len(got) != 0 {
		t.Fatalf("unchanged group notified: %v", got)
	}
	must(t, d.Receive(ctx, "a", alertOf("alertname=A,id=1", t0, -1), t0.Add(90*time.Second)))
	second := tick(2 * time.Minute)
	if len(second) != 1 || second[0].PreviousKey != first[0].IdempotencyKey || !second[0].GetPreviousAt().AsTime().Equal(t0) {
		t.Fatalf("resolution %v, want it after %s sent at t0", second, first[0].IdempotencyKey)
	}
}
