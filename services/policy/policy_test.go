package policy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/policy"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

const restartRules = `
policies:
  - name: restarts-short
    match: ['alertname="KubePodRestart"']
    key: [namespace, pod]
    threshold: 3
    window: 15m
    labels: {alertname: FrequentRestarts, severity: critical, priority: P1}
    annotations: {summary: 'Pod {{ $labels.pod }} restarted more than {{ $threshold }} times in {{ $window }}'}
  - name: restarts-long
    match: ['alertname="KubePodRestart"']
    key: [namespace, pod]
    threshold: 3
    window: 7d
    labels: {alertname: RecurringRestarts, severity: info, priority: P3}
  - name: backoff-events
    match: ['kind="k8s"', 'reason="BackOff"']
    key: [namespace, pod]
    threshold: 3
    window: 15m
    labels: {alertname: FrequentRestarts, severity: critical, priority: P1}
`

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

type fixture struct {
	t     *testing.T
	dir   string
	bus   *bus.Bus
	rules *ruleset.Holder
	clock *clock
	ev    *policy.Evaluator
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, restartRules) }

// newFixtureWith runs an evaluator on the rule file yml (tenant "default").
func newFixtureWith(t *testing.T, yml string) *fixture {
	rulesDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(rulesDir, "default"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rulesDir, "default", "policies.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := ruleset.NewHolder(rulesDir)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, dir: t.TempDir(), rules: h, clock: &clock{now: t0}}
	f.open()
	return f
}

func (f *fixture) open() {
	f.bus = bustest.NewAt(f.t, f.dir)
	ev, err := policy.New(context.Background(), policy.Config{Now: f.clock.Now}, f.bus, f.rules, bustest.Logger(f.t), prometheus.NewRegistry())
	if err != nil {
		f.t.Fatal(err)
	}
	f.ev = ev
}

// restart closes the bus and opens a new evaluator on the same data, then
// replays the bucket as Run would (the watcher's initial values).
func (f *fixture) restart() {
	f.bus.Close()
	f.open()
	f.recover()
}

func (f *fixture) recover() {
	f.t.Helper()
	if err := f.ev.Recover(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) restartAlert(pod string, startsAt time.Time) {
	f.t.Helper()
	env := &klaxonv1.Envelope{Tenant: "default", Source: "api-v2", Payload: &klaxonv1.Envelope_Alert{Alert: &klaxonv1.Alert{
		Labels:      map[string]string{"alertname": "KubePodRestart", "namespace": "shop", "pod": pod},
		StartsAt:    timestamppb.New(startsAt),
		Fingerprint: "fp-" + pod,
		Status:      klaxonv1.AlertStatus_ALERT_STATUS_FIRING,
	}}}
	if err := f.ev.Process(context.Background(), env); err != nil {
		f.t.Fatal(err)
	}
}

// derived reads the derived alerts published to INGEST, in order.
func (f *fixture) derived() []*klaxonv1.Alert {
	f.t.Helper()
	ctx := context.Background()
	s, err := f.bus.JS.Stream(ctx, bus.StreamIngest)
	if err != nil {
		f.t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	var out []*klaxonv1.Alert
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		var env klaxonv1.Envelope
		if err := proto.Unmarshal(m.Data, &env); err != nil {
			f.t.Fatal(err)
		}
		if env.Source == policy.Source {
			out = append(out, env.GetAlert())
		}
	}
	return out
}

func names(alerts []*klaxonv1.Alert) []string {
	var s []string
	for _, a := range alerts {
		st := "firing"
		if a.Status == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED {
			st = "resolved"
		}
		s = append(s, a.Labels["alertname"]+"/"+st)
	}
	return s
}

func TestShortAndLongWindowPolicies(t *testing.T) {
	f := newFixture(t)
	// Four restarts 3 minutes apart: both policies fire at the fourth.
	for i := 0; i < 4; i++ {
		at := t0.Add(time.Duration(i) * 3 * time.Minute)
		f.clock.Set(at)
		f.restartAlert("web-1", at)
		// Alertmanager re-sends the firing alert: never counted again.
		f.restartAlert("web-1", at)
	}
	got := f.derived()
	if fmt.Sprint(names(got)) != "[FrequentRestarts/firing RecurringRestarts/firing]" {
		t.Fatalf("derived %v", names(got))
	}
	short := got[0]
	if short.Labels["priority"] != "P1" || short.Labels["pod"] != "web-1" || short.Labels["namespace"] != "shop" || short.Labels["policy"] != "restarts-short" {
		t.Errorf("labels %v", short.Labels)
	}
	if short.Annotations["summary"] != "Pod web-1 restarted more than 3 times in 15m" {
		t.Errorf("summary %q", short.Annotations["summary"])
	}
	if short.Annotations["count"] != "4" || short.Annotations["first_occurrence"] != t0.Format(time.RFC3339) || short.GeneratorUrl == "" {
		t.Errorf("annotations %v url %q", short.Annotations, short.GeneratorUrl)
	}
	if !short.EndsAt.AsTime().Equal(t0.Add(15 * time.Minute)) {
		t.Errorf("endsAt %v, want when the first restart leaves the window", short.EndsAt.AsTime())
	}
	// 15 minutes after the first restart the short window resolves; the long
	// one keeps firing.
	f.clock.Set(t0.Add(15*time.Minute - time.Second))
	_ = f.ev.Tick(context.Background())
	if n := len(f.derived()); n != 2 {
		t.Fatalf("resolved too early: %v", names(f.derived()))
	}
	f.clock.Set(t0.Add(15 * time.Minute))
	if err := f.ev.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	got = f.derived()
	if fmt.Sprint(names(got)) != "[FrequentRestarts/firing RecurringRestarts/firing FrequentRestarts/resolved]" {
		t.Fatalf("derived %v", names(got))
	}
	f.clock.Set(t0.Add(7 * 24 * time.Hour))
	_ = f.ev.Tick(context.Background())
	if last := names(f.derived()); last[len(last)-1] != "RecurringRestarts/resolved" {
		t.Fatalf("long window did not resolve after 7d: %v", last)
	}
}

func TestRestartMidWindowKeepsCounting(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 3; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		f.clock.Set(at)
		f.restartAlert("api-0", at)
	}
	f.restart()
	// Redelivery of an already counted alert after the restart: no double count.
	f.restartAlert("api-0", t0.Add(2*time.Minute))
	if n := len(f.derived()); n != 0 {
		t.Fatalf("fired after 3 distinct restarts: %v", names(f.derived()))
	}
	f.clock.Set(t0.Add(4 * time.Minute))
	f.restartAlert("api-0", t0.Add(4*time.Minute))
	if got := names(f.derived()); len(got) != 2 {
		t.Fatalf("the 4th restart after a restart of Klaxon must fire both: %v", got)
	}
	// Restart again while firing: the schedule is rebuilt from KV and the
	// short window still resolves on time.
	f.restart()
	f.clock.Set(t0.Add(15 * time.Minute))
	if err := f.ev.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := names(f.derived())
	if got[len(got)-1] != "FrequentRestarts/resolved" {
		t.Fatalf("not resolved after restart: %v", got)
	}
}

func TestBackOffEventsCountByUIDAndCount(t *testing.T) {
	f := newFixture(t)
	for i := 1; i <= 4; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		f.clock.Set(at)
		env := &klaxonv1.Envelope{Tenant: "default", Source: "k8s", Payload: &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{
			Kind: "k8s", Id: fmt.Sprintf("uid-1/%d", i), Time: timestamppb.New(at),
			Labels: map[string]string{"reason": "BackOff", "namespace": "shop", "pod": "web-2"},
		}}}
		for j := 0; j < 2; j++ { // re-sent events count once
			if err := f.ev.Process(context.Background(), env); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := f.derived()
	if len(got) != 1 || got[0].Labels["pod"] != "web-2" || got[0].Labels["policy"] != "backoff-events" {
		t.Fatalf("derived %v", names(got))
	}
}

func TestLateOccurrencesAreDropped(t *testing.T) {
	f := newFixture(t)
	f.clock.Set(t0.Add(30 * time.Minute))
	for i := 0; i < 4; i++ {
		// Restarts from 20+ minutes ago are outside the short window.
		f.restartAlert("old", t0.Add(time.Duration(i)*time.Minute))
	}
	for _, a := range f.derived() {
		if a.Labels["alertname"] == "FrequentRestarts" {
			t.Fatal("occurrences older than the window fired the short policy")
		}
	}
}

func TestManyKeysAreIndependent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const pods = 200
	for i := 0; i < pods; i++ {
		at := t0.Add(time.Duration(i) * time.Second)
		f.clock.Set(at)
		// Every pod restarts 3 times (no alert); only every 10th a 4th time.
		for j := 0; j < 3; j++ {
			f.restartAlert(fmt.Sprintf("pod-%d", i), at.Add(-time.Duration(j)*time.Second))
		}
		if i%10 == 0 {
			f.restartAlert(fmt.Sprintf("pod-%d", i), at.Add(time.Millisecond))
		}
	}
	short := 0
	for _, a := range f.derived() {
		if a.Labels["alertname"] == "FrequentRestarts" {
			short++
		}
	}
	if short != pods/10 {
		t.Fatalf("%d short-window alerts, want %d", short, pods/10)
	}
	_ = ctx
}
