package heartbeat_test

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
	"github.com/klaxon-sh/klaxon/services/heartbeat"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

const rules = `
heartbeats:
  - name: prometheus-watchdog
    match: ['alertname="Watchdog"']
    interval: 1m
    grace: 4m
    labels: {severity: critical}
  - name: nightly-backup
    interval: 24h
    grace: 1h
`

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

type fixture struct {
	t     *testing.T
	dir   string
	rules *ruleset.Holder
	clock *clock
	bus   *bus.Bus
	m     *heartbeat.Monitor
	// resends counts re-sends of a firing alert seen by derived().
	resends int
}

func newFixture(t *testing.T) *fixture {
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "default"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "default", "hb.yml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := ruleset.NewHolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, dir: t.TempDir(), rules: h, clock: &clock{now: t0}}
	f.open()
	return f
}

func (f *fixture) open() {
	f.bus = bustest.NewAt(f.t, f.dir)
	m, err := heartbeat.New(context.Background(), heartbeat.Config{Now: f.clock.Now}, f.bus, f.rules, bustest.Logger(f.t), prometheus.NewRegistry())
	if err != nil {
		f.t.Fatal(err)
	}
	f.m = m
}

func (f *fixture) tick(at time.Duration) {
	f.t.Helper()
	f.clock.Set(t0.Add(at))
	if err := f.m.Tick(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) watchdog(at time.Duration) {
	f.t.Helper()
	f.clock.Set(t0.Add(at))
	env := &klaxonv1.Envelope{Tenant: "default", Source: "alertmanager", ReceivedAt: timestamppb.New(t0.Add(at)),
		Payload: &klaxonv1.Envelope_Alert{Alert: &klaxonv1.Alert{Labels: map[string]string{"alertname": "Watchdog"},
			StartsAt: timestamppb.New(t0), Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING}}}
	if err := f.m.Process(context.Background(), env); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) derived() []string {
	f.t.Helper()
	ctx := context.Background()
	s, _ := f.bus.JS.Stream(ctx, bus.StreamIngest)
	info, _ := s.Info(ctx)
	var out []string
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		var env klaxonv1.Envelope
		_ = proto.Unmarshal(m.Data, &env)
		if env.Source != heartbeat.Source {
			continue
		}
		a := env.GetAlert()
		st := "firing"
		if a.Status == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED {
			st = "resolved"
		}
		k := a.Labels["heartbeat"] + "/" + st
		if len(out) > 0 && out[len(out)-1] == k && st == "firing" {
			f.resends++ // a firing alert is re-sent every minute
			continue
		}
		out = append(out, k)
	}
	return out
}

func TestWatchdogMissAndReturn(t *testing.T) {
	f := newFixture(t)
	f.tick(0) // arms both heartbeats
	for i := 0; i <= 10; i++ {
		f.watchdog(time.Duration(i) * time.Minute)
		f.tick(time.Duration(i)*time.Minute + 30*time.Second)
	}
	if got := f.derived(); len(got) != 0 {
		t.Fatalf("fired while beating: %v", got)
	}
	// Last beat at 10m; interval 1m + grace 4m: silent after 15m.
	f.tick(15 * time.Minute)
	if got := f.derived(); len(got) != 0 {
		t.Fatalf("fired at exactly interval+grace: %v", got)
	}
	f.tick(15*time.Minute + time.Second)
	f.tick(16 * time.Minute)
	f.tick(30 * time.Minute)
	if got := fmt.Sprint(f.derived()); got != "[prometheus-watchdog/firing]" {
		t.Fatalf("want one page for the silence, got %v", got)
	}
	if f.resends == 0 {
		t.Fatal("a firing dead-man alert must be re-sent while it fires")
	}
	f.watchdog(31 * time.Minute)
	if got := fmt.Sprint(f.derived()); got != "[prometheus-watchdog/firing prometheus-watchdog/resolved]" {
		t.Fatalf("a returning heartbeat must resolve: %v", got)
	}
	f.tick(32 * time.Minute)
	if n := len(f.derived()); n != 2 {
		t.Fatalf("extra alerts: %v", f.derived())
	}
}

func TestMissedWhileDownFiresRightAfterStart(t *testing.T) {
	f := newFixture(t)
	f.tick(0)
	f.watchdog(time.Minute)
	f.bus.Close()
	// Klaxon is down for an hour; the Watchdog stopped too.
	f.clock.Set(t0.Add(time.Hour))
	f.open()
	f.tick(time.Hour)
	if got := fmt.Sprint(f.derived()); got != "[prometheus-watchdog/firing]" {
		t.Fatalf("after restart: %v", got)
	}
}

func TestNeverSeenHeartbeatFires(t *testing.T) {
	f := newFixture(t)
	f.tick(0)
	f.tick(24*time.Hour + time.Hour)
	for i := 0; i < 30; i++ { // keep the watchdog alive
		f.watchdog(24*time.Hour + time.Hour + time.Duration(i)*time.Second)
	}
	f.tick(25*time.Hour + time.Second)
	got := f.derived()
	want := "nightly-backup/firing"
	found := false
	for _, g := range got {
		if g == want {
			found = true
		}
	}
	if !found {
		t.Fatalf("a heartbeat never received must fire after interval+grace from arming: %v", got)
	}
	// The cron job checks in: resolved.
	f.clock.Set(t0.Add(26 * time.Hour))
	env := &klaxonv1.Envelope{Tenant: "default", Source: "heartbeat", ReceivedAt: timestamppb.New(f.clock.Now()),
		Payload: &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{Kind: "heartbeat", Name: "nightly-backup", Time: timestamppb.New(f.clock.Now())}}}
	if err := f.m.Process(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	got = f.derived()
	if got[len(got)-1] != "nightly-backup/resolved" {
		t.Fatalf("%v", got)
	}
}

func TestTwoReplicasPageOnce(t *testing.T) {
	f := newFixture(t)
	other, err := heartbeat.New(context.Background(), heartbeat.Config{Now: f.clock.Now}, f.bus, f.rules, bustest.Logger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	f.tick(0)
	f.watchdog(0)
	f.clock.Set(t0.Add(10 * time.Minute))
	var wg sync.WaitGroup
	for _, m := range []*heartbeat.Monitor{f.m, other} {
		wg.Add(1)
		go func(m *heartbeat.Monitor) { defer wg.Done(); _ = m.Tick(context.Background()) }(m)
	}
	wg.Wait()
	if got := fmt.Sprint(f.derived()); got != "[prometheus-watchdog/firing]" {
		t.Fatalf("two replicas: %v", got)
	}
}

// A derived alert whose publish fails is published by the next update of
// its heartbeat: the resolve of a returning heartbeat when JetStream could
// not take it, and the first page of a silent one. Before, the state was
// written first and the alert then lost: the state said resolved, so the
// redelivered beat sent nothing, and the page waited for the next re-send.
func TestDerivedAlertIsPublishedAfterAFailedPublish(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.tick(0)
	f.watchdog(0)
	f.tick(6 * time.Minute) // silent past interval + grace: fires
	if got := fmt.Sprint(f.derived()); got != "[prometheus-watchdog/firing]" {
		t.Fatalf("derived %v, want the page", got)
	}
	// INGEST gone: every publish fails.
	st, err := f.bus.JS.Stream(ctx, bus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if err := f.bus.JS.DeleteStream(ctx, bus.StreamIngest); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(t0.Add(7 * time.Minute))
	env := &klaxonv1.Envelope{Tenant: "default", Source: "alertmanager", ReceivedAt: timestamppb.New(t0.Add(7 * time.Minute)),
		Payload: &klaxonv1.Envelope_Alert{Alert: &klaxonv1.Alert{Labels: map[string]string{"alertname": "Watchdog"},
			StartsAt: timestamppb.New(t0), Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING}}}
	if err := f.m.Process(ctx, env); err == nil {
		t.Fatal("the beat's resolve published with no INGEST stream")
	}
	cfg.Subjects = []string{"klaxon.in.>"}
	if _, err := f.bus.JS.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	// The beat is redelivered: the resolve decided with it goes out.
	f.watchdog(7 * time.Minute)
	if got := fmt.Sprint(f.derived()); got != "[prometheus-watchdog/resolved]" {
		t.Fatalf("derived after the redelivered beat %v, want the resolve", got)
	}
	f.tick(8 * time.Minute)
	if got := fmt.Sprint(f.derived()); got != "[prometheus-watchdog/resolved]" {
		t.Fatalf("derived %v: the resolve published again", got)
	}
}
