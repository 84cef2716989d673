package policy_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
)

// ingestDown deletes the INGEST stream (every publish to it fails, as when
// the stream is unavailable) and returns what brings it back.
func ingestDown(t *testing.T, f *fixture) (restore func()) {
	t.Helper()
	ctx := context.Background()
	st, err := f.bus.JS.Stream(ctx, bus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if err := f.bus.JS.DeleteStream(ctx, bus.StreamIngest); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if _, err := f.bus.JS.CreateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
}

func restartEnv(pod string, startsAt time.Time) *klaxonv1.Envelope {
	return &klaxonv1.Envelope{Tenant: "default", Source: "api-v2", Payload: &klaxonv1.Envelope_Alert{Alert: &klaxonv1.Alert{
		Labels:      map[string]string{"alertname": "KubePodRestart", "namespace": "shop", "pod": pod},
		StartsAt:    timestamppb.New(startsAt),
		Fingerprint: "fp-" + pod,
		Status:      klaxonv1.AlertStatus_ALERT_STATUS_FIRING,
	}}}
}

// TestRedeliveryPublishesDerivedAlertAfterFailedPublish: a user relies on
// FrequentRestarts paging when the 4th restart is counted, also when INGEST
// was briefly unavailable for the derived alert. Before, the 4th restart
// was written to KV, the publish failed, and the redelivered restart was a
// duplicate: the derived alert never fired, and 15 minutes later a resolve
// went out for an alert nobody had seen firing.
func TestRedeliveryPublishesDerivedAlertAfterFailedPublish(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		f.clock.Set(at)
		f.restartAlert("web-1", at)
	}
	fourth := t0.Add(3 * time.Minute)
	f.clock.Set(fourth)
	env := restartEnv("web-1", fourth)

	restore := ingestDown(t, f)
	if err := f.ev.Process(ctx, env); err == nil {
		t.Fatal("Process with INGEST down returned nil: the message would be acked and the derived alert lost")
	}
	restore()

	// JetStream redelivers the 4th restart, twice (the first ack was lost).
	f.clock.Set(fourth.Add(10 * time.Second))
	for i := 0; i < 2; i++ {
		if err := f.ev.Process(ctx, env); err != nil {
			t.Fatalf("redelivery %d: %v", i, err)
		}
	}
	got := f.derived()
	if fmt.Sprint(names(got)) != "[FrequentRestarts/firing RecurringRestarts/firing]" {
		t.Fatalf("after redelivery: %v, want each derived alert firing once", names(got))
	}
	if a := got[0]; a.Annotations["count"] != "4" || !a.StartsAt.AsTime().Equal(fourth) || !a.EndsAt.AsTime().Equal(t0.Add(15*time.Minute)) {
		t.Errorf("derived alert count %q startsAt %v endsAt %v", a.Annotations["count"], a.StartsAt.AsTime(), a.EndsAt.AsTime())
	}

	// The resolve follows the firing alert, on time.
	f.clock.Set(t0.Add(15 * time.Minute))
	if err := f.ev.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(f.derived()); fmt.Sprint(got) != "[FrequentRestarts/firing RecurringRestarts/firing FrequentRestarts/resolved]" {
		t.Fatalf("after 15m: %v", got)
	}
}

// TestResolveSendsUnpublishedFiringThenRetriesResolve: a user relies on
// every resolve following its firing alert, even when the occurrence whose
// derived alert failed to publish is never redelivered (dead-lettered) and
// when the resolve's own publish fails. Before, Tick sent a resolve for a
// firing alert that was never published, and a resolve whose publish failed
// was not retried (the window already said resolved).
func TestResolveSendsUnpublishedFiringThenRetriesResolve(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		f.clock.Set(at)
		f.restartAlert("web-1", at)
	}
	fourth := t0.Add(3 * time.Minute)
	f.clock.Set(fourth)
	restore := ingestDown(t, f)
	if err := f.ev.Process(ctx, restartEnv("web-1", fourth)); err == nil {
		t.Fatal("Process with INGEST down returned nil")
	}
	restore()

	// No redelivery: the next Tick publishes both firing alerts, and the
	// resolve follows at its time.
	f.clock.Set(fourth.Add(time.Second))
	if err := f.ev.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(f.derived()); len(got) != 2 || !slices.Contains(got, "FrequentRestarts/firing") || !slices.Contains(got, "RecurringRestarts/firing") {
		t.Fatalf("the Tick after the failed publish: %v", got)
	}
	f.clock.Set(t0.Add(15*time.Minute - time.Second))
	if err := f.ev.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.derived()); n != 2 {
		t.Fatalf("resolved early: %v", names(f.derived()))
	}
	f.clock.Set(t0.Add(15 * time.Minute))
	if err := f.ev.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(f.derived()); got[len(got)-1] != "FrequentRestarts/resolved" || len(got) != 3 {
		t.Fatalf("at the resolve time: %v", got)
	}

	// The 7d window resolves while INGEST is down: Tick fails, then retries.
	f.clock.Set(t0.Add(7 * 24 * time.Hour))
	restore = ingestDown(t, f)
	if err := f.ev.Tick(ctx); err == nil {
		t.Fatal("Tick with INGEST down returned nil")
	}
	restore()
	if n := len(f.derived()); n != 0 {
		t.Fatalf("recreated stream not empty: %d", n)
	}
	// Run would now apply the watcher's update of the window the failed
	// resolve wrote; the retry must survive it.
	if err := f.ev.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(t0.Add(7*24*time.Hour + 2*time.Second))
	if err := f.ev.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.derived()
	if len(got) != 1 || got[0].Labels["alertname"] != "RecurringRestarts" || got[0].Status != klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED {
		t.Fatalf("after the retry: %v, want RecurringRestarts/resolved", names(got))
	}
}
