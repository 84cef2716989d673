package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// TestScheduleOneEntryPerKey: schedule, reschedule (earlier and later) and
// unschedule keep exactly one heap entry per key, and popDue returns the
// keys due by now in time order.
func TestScheduleOneEntryPerKey(t *testing.T) {
	e := &Evaluator{at: map[string]*dueItem{}}
	for i := 0; i < 1000; i++ {
		e.schedule("a", t0.Add(time.Duration(i)*time.Second)) // later each time
		e.schedule("b", t0.Add(time.Duration(2000-i)*time.Second))
	}
	e.schedule("c", t0.Add(time.Hour))
	e.schedule("d", t0)
	e.unschedule("d")
	e.unschedule("nope")
	if e.due.Len() != 3 || e.Scheduled() != 3 {
		t.Fatalf("heap len %d, scheduled %d, want 3 (a, b, c)", e.due.Len(), e.Scheduled())
	}
	// a is due at t0+999s, b at t0+1001s, c at t0+1h.
	if got := e.popDue(t0.Add(998 * time.Second)); len(got) != 0 {
		t.Fatalf("due before its time: %v", got)
	}
	if got := e.popDue(t0.Add(1001 * time.Second)); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("due at t0+1001s: %v", got)
	}
	if got := e.popDue(t0.Add(time.Hour)); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("due at t0+1h: %v", got)
	}
	if e.due.Len() != 0 || e.Scheduled() != 0 {
		t.Fatalf("heap len %d, scheduled %d after all were due", e.due.Len(), e.Scheduled())
	}
}

// TestResolveScheduleBoundedByKeys: a user relies on a replica's memory
// staying bounded by its firing windows, whatever their rate, and on each
// window still resolving when its oldest counted occurrence leaves it.
// Before, every occurrence counted while a window fired pushed another
// entry (its resolve time moved), dropped only when that time passed, a
// window later: one key of a 7d policy at 1 event/s held ≈600k entries.
func TestResolveScheduleBoundedByKeys(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "default"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "default", "p.yml"), []byte(`
policies:
  - name: denied
    match: ['reason="AccessDenied"']
    key: [namespace]
    threshold: 3
    window: 7d
    labels: {alertname: Denied}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := ruleset.NewHolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	var now time.Time
	clock := func() time.Time { return now }
	e, err := New(context.Background(), Config{Now: clock}, bustest.New(t), h, bustest.Logger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const keys, perKey = 3, 700
	window := 7 * 24 * time.Hour
	last := map[string][]time.Time{} // namespace → its occurrence times
	now = t0
	for i := 0; i < keys*perKey; i++ {
		now = now.Add(time.Second)
		ns := fmt.Sprintf("ns-%d", i%keys)
		last[ns] = append(last[ns], now)
		env := &klaxonv1.Envelope{Tenant: "default", Source: "cloudtrail", Payload: &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{
			Kind: "cloudtrail", Id: fmt.Sprint(i), Time: timestamppb.New(now),
			Labels: map[string]string{"reason": "AccessDenied", "namespace": ns}}}}
		if err := e.Process(ctx, env); err != nil {
			t.Fatal(err)
		}
		if err := e.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if n := e.due.Len(); n > keys {
			t.Fatalf("after %d occurrences: %d schedule entries for %d keys", i+1, n, keys)
		}
	}
	if e.Scheduled() != keys || e.due.Len() != keys {
		t.Fatalf("scheduled %d, heap len %d, want %d", e.Scheduled(), e.due.Len(), keys)
	}
	resolved := func() float64 { return testutil.ToFloat64(e.metrics.derived.WithLabelValues("resolved")) }
	// Each key resolves when the oldest of its newest 4 occurrences is a
	// window old: not a moment before.
	for k := 0; k < keys; k++ {
		occ := last[fmt.Sprintf("ns-%d", k)]
		at := occ[len(occ)-4].Add(window)
		now = at.Add(-time.Nanosecond)
		if err := e.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if got := resolved(); got != float64(k) {
			t.Fatalf("ns-%d: %v resolved a nanosecond before its time, want %d", k, got, k)
		}
		now = at
		if err := e.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if got := resolved(); got != float64(k+1) {
			t.Fatalf("ns-%d: %v resolved at its time, want %d", k, got, k+1)
		}
	}
	if e.Scheduled() != 0 || e.due.Len() != 0 {
		t.Fatalf("after every window resolved: scheduled %d, heap len %d", e.Scheduled(), e.due.Len())
	}
}
