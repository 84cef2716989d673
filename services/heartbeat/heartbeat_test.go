package heartbeat_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

// storeWatchdog stores a Watchdog delivery received at at in INGEST, as the
// receiver does, for a consumer to read later.
func (f *fixture) storeWatchdog(at time.Duration) {
	f.t.Helper()
	env := &klaxonv1.Envelope{Tenant: "default", Source: "alertmanager", Id: fmt.Sprintf("wd-%d", at), ReceivedAt: timestamppb.New(t0.Add(at)),
		Payload: &klaxonv1.Envelope_Alert{Alert: &klaxonv1.Alert{Labels: map[string]string{"alertname": "Watchdog"},
			StartsAt: timestamppb.New(t0), Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING}}}
	data, _ := env.MarshalVT()
	if _, err := f.bus.Publish(context.Background(), bus.Message{Subject: bus.IngestSubject("default", "alertmanager"), ID: env.Id, Data: data}); err != nil {
		f.t.Fatal(err)
	}
}

// drain runs the monitor's consumer until it has processed INGEST.
func (f *fixture) drain(durable string) {
	f.t.Helper()
	ctx := context.Background()
	cc, err := f.bus.ConsumeEnvelopes(ctx, bus.ConsumerConfig{Durable: durable, MaxAckPending: 4096}, f.m.Process)
	if err != nil {
		f.t.Fatal(err)
	}
	defer cc.Stop()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		cons, err := f.bus.JS.Consumer(ctx, bus.StreamIngest, durable)
		if err != nil {
			f.t.Fatal(err)
		}
		if ci := cons.CachedInfo(); ci.NumPending == 0 && ci.NumAckPending == 0 {
			return
		}
	}
	f.t.Fatal("consumer did not catch up")
}

// Beats are judged by when Klaxon received them. The engine is down for
// minutes while the receivers keep storing the Watchdog's beats; when it
// starts, its first check must not page before the consumer has read them
// (before, it paged at once and the backlog resolved it seconds later). A
// consumer stuck, or further behind than grace, pages all the same, and a
// beat read late still resolves (before, every beat read more than
// interval + grace late was judged stale and left it firing).
func TestBeatsWaitingInTheConsumerDoNotPage(t *testing.T) {
	f := newFixture(t)
	f.m, _ = heartbeat.New(context.Background(), heartbeat.Config{Now: f.clock.Now, NoConsumer: true, Consumer: "derived"},
		f.bus, f.rules, bustest.Logger(t), prometheus.NewRegistry())
	f.tick(0)
	f.storeWatchdog(0)
	f.drain("derived")
	// Engine down from 30s to 8m10s; beats every minute wait in INGEST.
	for i := 1; i <= 8; i++ {
		f.storeWatchdog(time.Duration(i) * time.Minute)
	}
	f.bus.Close()
	f.clock.Set(t0.Add(8*time.Minute + 10*time.Second))
	f.open()
	f.m, _ = heartbeat.New(context.Background(), heartbeat.Config{Now: f.clock.Now, NoConsumer: true, Consumer: "derived"},
		f.bus, f.rules, bustest.Logger(t), prometheus.NewRegistry())
	f.tick(8*time.Minute + 10*time.Second) // the check at start, before the consumer reads
	if got := f.derived(); len(got) != 0 {
		t.Fatalf("paged with the Watchdog's beats still in the backlog: %v", got)
	}
	f.drain("derived")
	f.tick(8*time.Minute + 11*time.Second)
	if got := f.derived(); len(got) != 0 {
		t.Fatalf("paged after reading the backlog: %v", got)
	}

	// Now the consumer is stuck: the beats of 9m … 17m wait. Last beat
	// read at 8m: due at 13m, deferred by at most grace (4m).
	for i := 9; i <= 17; i++ {
		f.storeWatchdog(time.Duration(i) * time.Minute)
	}
	f.tick(16 * time.Minute)
	f.tick(17 * time.Minute)
	if got := f.derived(); len(got) != 0 {
		t.Fatalf("paged within grace of a stuck consumer: %v", got)
	}
	f.tick(17*time.Minute + time.Second)
	if got := fmt.Sprint(f.derived()); got != "[prometheus-watchdog/firing]" {
		t.Fatalf("a consumer stuck for longer than grace must page: %v", got)
	}
	// It comes back: the beat of 9m, read 8 minutes late, was on time.
	late := &klaxonv1.Envelope{Tenant: "default", Source: "alertmanager", ReceivedAt: timestamppb.New(t0.Add(9 * time.Minute)),
		Payload: &klaxonv1.Envelope_Alert{Alert: &klaxonv1.Alert{Labels: map[string]string{"alertname": "Watchdog"},
			StartsAt: timestamppb.New(t0), Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING}}}
	if err := f.m.Process(context.Background(), late); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(f.derived()); got != "[prometheus-watchdog/firing prometheus-watchdog/resolved]" {
		t.Fatalf("a beat read late must resolve: %v", got)
	}
	f.drain("derived")
	if got := fmt.Sprint(f.derived()); got != "[prometheus-watchdog/firing prometheus-watchdog/resolved]" {
		t.Fatalf("beats read late must resolve: %v", got)
	}
	f.tick(17*time.Minute + 2*time.Second)
	if got := fmt.Sprint(f.derived()); got != "[prometheus-watchdog/firing prometheus-watchdog/resolved]" {
		t.Fatalf("fired again after the late beats: %v", got)
	}
	// And a heartbeat that really stopped (last beat 17m) still pages on
	// time once the consumer has caught up.
	f.tick(22 * time.Minute)
	if n := len(f.derived()); n != 2 {
		t.Fatalf("paged at exactly interval + grace: %v", f.derived())
	}
	f.tick(22*time.Minute + time.Second)
	if got := fmt.Sprint(f.derived()); got != "[prometheus-watchdog/firing prometheus-watchdog/resolved prometheus-watchdog/firing]" {
		t.Fatalf("a silent heartbeat with the consumer caught up: %v", got)
	}
}

// published lists the derived alerts of heartbeat name in INGEST, each as
// status@startsAt (an offset from t0), re-sends included.
func (f *fixture) published(name string) []string {
	f.t.Helper()
	ctx := context.Background()
	s, _ := f.bus.JS.Stream(ctx, bus.StreamIngest)
	info, _ := s.Info(ctx)
	var out []string
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		var env klaxonv1.Envelope
		_ = proto.Unmarshal(m.Data, &env)
		if a := env.GetAlert(); env.Source == heartbeat.Source && a.Labels["heartbeat"] == name {
			out = append(out, fmt.Sprintf("%s@%s", a.Status, a.StartsAt.AsTime().Sub(t0)))
		}
	}
	return out
}

// setRules writes the tenant's heartbeat rules and reloads them.
func (f *fixture) setRules(yml string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.rules.Dir(), "default", "hb.yml"), []byte(yml), 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := f.rules.Reload(); err != nil {
		f.t.Fatal(err)
	}
}

const backupOnly = `
heartbeats:
  - name: nightly-backup
    interval: 24h
    grace: 1h
`

// A heartbeat removed from the rules and added again weeks later is a new
// one: it fires interval + grace after it was added again. Before, its old
// state stayed for ever and it paged at once, re-sending the page it had
// when removed, with that page's startsAt. Removed while Klaxon was down,
// it is forgotten at start. A heartbeat still in the rules keeps its state.
func TestRemovedHeartbeatIsArmedAnewWhenAdded(t *testing.T) {
	const week = 7 * 24 * time.Hour
	for _, whileDown := range []bool{false, true} {
		t.Run(fmt.Sprintf("removed while down %v", whileDown), func(t *testing.T) {
			f := newFixture(t)
			f.tick(0)
			f.watchdog(0)
			f.tick(6 * time.Minute)
			if got := fmt.Sprint(f.published("prometheus-watchdog")); got != "[ALERT_STATUS_FIRING@6m0s]" {
				t.Fatalf("before removal: %v", got)
			}
			if whileDown {
				f.bus.Close()
				f.setRules(backupOnly)
				f.clock.Set(t0.Add(7 * time.Minute))
				f.open()
			} else {
				f.setRules(backupOnly)
			}
			f.tick(7 * time.Minute)
			f.tick(3 * week) // the nightly backup, kept, fires: never seen
			if got := fmt.Sprint(f.published("nightly-backup")); got != "[ALERT_STATUS_FIRING@504h0m0s]" {
				t.Fatalf("a heartbeat still in the rules must keep its state: %v", got)
			}
			f.setRules(rules)
			f.tick(3 * week)
			f.tick(3*week + 5*time.Minute)
			if got := fmt.Sprint(f.published("prometheus-watchdog")); got != "[ALERT_STATUS_FIRING@6m0s]" {
				t.Fatalf("added again: fired before interval + grace: %v", got)
			}
			f.tick(3*week + 5*time.Minute + time.Second)
			if got := fmt.Sprint(f.published("prometheus-watchdog")); got != "[ALERT_STATUS_FIRING@6m0s ALERT_STATUS_FIRING@504h5m1s]" {
				t.Fatalf("added again: want a new page interval + grace after: %v", got)
			}
		})
	}
}

// A heartbeat missing from the rules for less than 10 minutes keeps its
// state: during a rollout a replica still on the old rules sees a new
// heartbeat as removed, and deleting its state there resolved a silent
// heartbeat's page (no longer re-sent) and re-armed it on the replicas with
// the new rules, which paged again only interval + grace later.
func TestHeartbeatMissingFromTheRulesBrieflyKeepsItsState(t *testing.T) {
	f := newFixture(t)
	f.tick(0)
	f.watchdog(0)
	f.tick(6 * time.Minute) // the watchdog fires
	f.setRules(backupOnly)  // a replica on other rules
	f.tick(7 * time.Minute)
	f.tick(9 * time.Minute)
	f.setRules(rules)
	f.tick(10 * time.Minute)
	if got := fmt.Sprint(f.published("prometheus-watchdog")); got != "[ALERT_STATUS_FIRING@6m0s ALERT_STATUS_FIRING@6m0s]" {
		t.Fatalf("missing from the rules for 3 minutes: want the page re-sent with its start, got %v", got)
	}
	// Missing for 10 minutes, it is gone: added again, it is a new one.
	f.setRules(backupOnly)
	f.tick(11 * time.Minute)
	f.tick(21 * time.Minute)
	f.setRules(rules)
	f.tick(22 * time.Minute)
	f.tick(27 * time.Minute)
	if got := fmt.Sprint(f.published("prometheus-watchdog")); got != "[ALERT_STATUS_FIRING@6m0s ALERT_STATUS_FIRING@6m0s]" {
		t.Fatalf("removed for 10 minutes, added again: fired before interval + grace: %v", got)
	}
}

// Forgetting removed heartbeats must not forget silent ones across a
// restart: after weeks down, a heartbeat that was firing re-sends its page
// at once, with its startsAt, and one silent since before the outage fires
// at once (re-arming it would hide the outage for interval + grace).
func TestSilentHeartbeatFiresRightAfterALongOutage(t *testing.T) {
	f := newFixture(t)
	f.tick(0)
	f.watchdog(0)
	f.tick(6 * time.Minute) // the watchdog fires
	f.bus.Close()
	f.clock.Set(t0.Add(3 * 7 * 24 * time.Hour))
	f.open()
	f.tick(3 * 7 * 24 * time.Hour)
	if got := fmt.Sprint(f.published("prometheus-watchdog")); got != "[ALERT_STATUS_FIRING@6m0s ALERT_STATUS_FIRING@6m0s]" {
		t.Fatalf("a firing heartbeat after a restart: %v", got)
	}
	if got := fmt.Sprint(f.published("nightly-backup")); got != "[ALERT_STATUS_FIRING@504h0m0s]" {
		t.Fatalf("a heartbeat silent since before the outage must fire at start: %v", got)
	}
}

// A silent heartbeat logs "heartbeat firing" at info once, when it fires,
// and "heartbeat resolved" once; the re-sends that keep its alert's end
// ahead are debug. Every re-send was logged at info, once a minute.
func TestOnlyChangesAreLoggedAtInfo(t *testing.T) {
	f := newFixture(t)
	var logs lockedBuffer
	m, err := heartbeat.New(context.Background(), heartbeat.Config{Now: f.clock.Now}, f.bus, f.rules,
		slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	f.watchdog(0)
	for at := 6 * time.Minute; at <= 12*time.Minute; at += time.Minute {
		f.tick(at) // fires at 6m, then re-sent every minute
	}
	f.watchdog(13 * time.Minute)
	_ = f.derived() // counts the re-sends
	if f.resends == 0 {
		t.Fatal("no re-send of the firing alert: the test does not test what it says")
	}
	out := logs.String()
	if n := strings.Count(out, `msg="heartbeat firing"`); n != 1 {
		t.Errorf("%d info lines for the firing, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, `msg="heartbeat resolved"`); n != 1 {
		t.Errorf("%d info lines for the resolve, want 1:\n%s", n, out)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
