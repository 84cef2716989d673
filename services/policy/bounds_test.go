package policy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
)

// boundsRules are policies at the loader's bounds: the shortest window (1s)
// and the longest (366d).
const boundsRules = `
policies:
  - name: flapping
    match: ['alertname="KubePodRestart"']
    key: [namespace, pod]
    threshold: 1
    window: 1s
    labels: {alertname: Flapping}
  - name: yearly
    match: ['alertname="KubePodRestart"']
    key: [namespace, pod]
    threshold: 1
    window: 366d
    labels: {alertname: RestartedThisYear}
`

// TestWindowBoundsThroughKV: a 1s and a 366d window count through the KV
// bucket, resolve exactly one window after their first occurrence (also
// after a restart of the evaluator for the long one), and their keys carry a
// TTL that outlives the window (so nothing is forgotten while it counts) yet
// is bounded by it (so idle keys go away).
func TestWindowBoundsThroughKV(t *testing.T) {
	f := newFixtureWith(t, boundsRules)
	ctx := context.Background()
	year := 366 * 24 * time.Hour

	f.restartAlert("web-1", t0)
	second := t0.Add(900 * time.Millisecond)
	f.clock.Set(second)
	f.restartAlert("web-1", second)
	if got := fmt.Sprint(names(f.derived())); got != "[Flapping/firing RestartedThisYear/firing]" {
		t.Fatalf("two restarts 900ms apart: %v", got)
	}
	for _, a := range f.derived() {
		if a.Annotations["count"] != "2" {
			t.Errorf("%s: count %q, want 2", a.Labels["alertname"], a.Annotations["count"])
		}
	}
	if got := f.derived()[1].Annotations["window"]; got != "366d" {
		t.Errorf("window annotation %q", got)
	}

	// TTLs of the two keys: at least the window past the newest occurrence.
	ttls := keyTTLs(t, f)
	if len(ttls) != 2 {
		t.Fatalf("keys %v", ttls)
	}
	for key, ttl := range ttls {
		min := time.Second
		if strings.Contains(key, ".yearly.") {
			min = year
		}
		if ttl < min || ttl > min+2*time.Hour {
			t.Errorf("key %s has TTL %s, want at least its window %s and not much more", key, ttl, min)
		}
	}

	// The 1s window: the first restart leaves it at t0+1s.
	f.clock.Set(t0.Add(time.Second - time.Millisecond))
	if err := f.ev.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.derived()); n != 2 {
		t.Fatalf("resolved before the 1s window passed: %v", names(f.derived()))
	}
	f.clock.Set(t0.Add(time.Second))
	if err := f.ev.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(f.derived()); fmt.Sprint(got[2:]) != "[Flapping/resolved]" {
		t.Fatalf("1s window after 1s: %v", got)
	}

	// The 366d window survives a restart and resolves at t0+366d.
	f.restart()
	f.clock.Set(t0.Add(year - time.Second))
	if err := f.ev.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.derived()); n != 3 {
		t.Fatalf("366d window resolved early: %v", names(f.derived()))
	}
	// A third restart late in the year keeps it above the threshold.
	f.restartAlert("web-1", t0.Add(year-time.Second))
	f.clock.Set(t0.Add(year))
	if err := f.ev.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(f.derived()); strings.Contains(fmt.Sprint(got), "RestartedThisYear/resolved") {
		t.Fatalf("2 of 3 restarts still in the 366d window, yet: %v", got)
	}
	f.clock.Set(second.Add(year))
	if err := f.ev.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.derived()
	if last := got[len(got)-1]; last.Labels["alertname"] != "RestartedThisYear" || last.Status != klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED {
		t.Fatalf("366d window after its second restart left: %v", names(got))
	}
}

// keyTTLs reads the Nats-TTL header of every key in the window bucket.
func keyTTLs(t *testing.T, f *fixture) map[string]time.Duration {
	t.Helper()
	ctx := context.Background()
	kv, err := f.bus.JS.KeyValue(ctx, bus.BucketWindows)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.bus.JS.Stream(ctx, "KV_"+bus.BucketWindows)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Duration{}
	for _, k := range keys {
		m, err := s.GetLastMsgForSubject(ctx, "$KV."+bus.BucketWindows+"."+k)
		if err != nil {
			t.Fatal(err)
		}
		ttl, err := time.ParseDuration(m.Header.Get(jetstream.MsgTTLHeader))
		if err != nil {
			t.Fatalf("key %s: TTL header %q: %v", k, m.Header.Get(jetstream.MsgTTLHeader), err)
		}
		out[k] = ttl
	}
	return out
}
