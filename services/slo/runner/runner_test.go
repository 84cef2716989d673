package runner_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/ruleset"
	"github.com/klaxon-sh/klaxon/services/slo/runner"
)

const rules = `
slos:
  - name: checkout-availability
    objective: 99.9
    period: 30d
    bad_alerts: ['alertname="CheckoutDown"']
    labels: {team: payments}
  - name: api-requests
    objective: "99.5"
    period: 30d
    events: {}
    min_events: 100
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
	r     *runner.Runner
	reg   *prometheus.Registry
	// refreshes counts re-sends of firing alerts seen by the last burnAlerts.
	refreshes int
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, rules) }

// newFixtureWith runs a runner on the rule file yml (tenant "default").
func newFixtureWith(t *testing.T, yml string) *fixture {
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "default"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "default", "slo.yml"), []byte(yml), 0o644); err != nil {
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
	f.reg = prometheus.NewRegistry()
	r, err := runner.New(context.Background(), runner.Config{Now: f.clock.Now}, f.bus, f.rules, bustest.Logger(f.t), f.reg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.r = r
}

func (f *fixture) process(env *klaxonv1.Envelope) {
	f.t.Helper()
	if err := f.r.Process(context.Background(), env); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) tick(at time.Time) {
	f.t.Helper()
	f.clock.Set(at)
	if err := f.r.Tick(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) burnAlerts() []string {
	f.t.Helper()
	ctx := context.Background()
	s, _ := f.bus.JS.Stream(ctx, bus.StreamIngest)
	info, _ := s.Info(ctx)
	var out []string
	last := map[string]string{}
	refreshes := 0
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		var env klaxonv1.Envelope
		_ = proto.Unmarshal(m.Data, &env)
		if env.Source != runner.Source {
			continue
		}
		a := env.GetAlert()
		st := "firing"
		if a.Status == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED {
			st = "resolved"
		}
		k := fmt.Sprintf("%s/%s/%s-%s", a.Labels["slo"], a.Labels["severity"], a.Labels["long_window"], a.Labels["short_window"])
		if last[k] == st {
			refreshes++ // a firing alert is re-sent every evaluation
			continue
		}
		last[k] = st
		out = append(out, k+"/"+st)
	}
	f.refreshes = refreshes
	return out
}

func alert(status klaxonv1.AlertStatus, start time.Time, end *time.Time) *klaxonv1.Envelope {
	a := &klaxonv1.Alert{Labels: map[string]string{"alertname": "CheckoutDown"}, StartsAt: timestamppb.New(start), Fingerprint: "fp1", Status: status}
	if end != nil {
		a.EndsAt = timestamppb.New(*end)
	}
	return &klaxonv1.Envelope{Tenant: "default", Source: "api-v2", ReceivedAt: timestamppb.New(start), Payload: &klaxonv1.Envelope_Alert{Alert: a}}
}

func counts(name string, at time.Time, good, total int64) *klaxonv1.Envelope {
	return &klaxonv1.Envelope{Tenant: "default", Source: "slo", Payload: &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{
		Kind: "slo", Name: name, Time: timestamppb.New(at), Good: good, Total: total}}}
}

func TestTimeSliceOutagePagesAndResolves(t *testing.T) {
	f := newFixture(t)
	f.tick(t0)
	f.process(alert(klaxonv1.AlertStatus_ALERT_STATUS_FIRING, t0.Add(time.Minute), nil))
	f.tick(t0.Add(time.Minute))
	if got := fmt.Sprint(f.burnAlerts()); got != "[checkout-availability/page/1h-5m/firing]" {
		t.Fatalf("after the first bad minute: %v", got)
	}
	// A restart in the middle keeps the counters: the outage goes on.
	f.bus.Close()
	f.open()
	f.tick(t0.Add(5 * time.Minute))
	end := t0.Add(10 * time.Minute)
	f.process(alert(klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED, t0.Add(time.Minute), &end))
	for m := 10; m <= 40; m++ {
		f.tick(t0.Add(time.Duration(m) * time.Minute))
	}
	got := f.burnAlerts()
	// Nine bad minutes are a fifth of a 30-day budget of 43.2 minutes: the
	// pages resolve with their short windows, the ticket (1× over 3d and 6h)
	// stays open.
	want := []string{"checkout-availability/page/1h-5m/firing", "checkout-availability/page/6h-30m/firing", "checkout-availability/ticket/3d-6h/firing",
		"checkout-availability/page/1h-5m/resolved", "checkout-availability/page/6h-30m/resolved"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("burn alerts %v\nwant %v", got, want)
	}
	if f.refreshes == 0 {
		t.Error("firing burn alerts must be re-sent while they fire (their endsAt expires otherwise)")
	}
	if v := testutil.ToFloat64(prometheusGauge(t, f.reg, "klaxon_slo_error_budget_remaining_ratio", "checkout-availability", "month")); v >= 1 || v < 0.5 {
		t.Errorf("month budget remaining %v after 9 bad minutes of 43.2", v)
	}
}

func prometheusGauge(t *testing.T, reg *prometheus.Registry, name, sloName, period string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["slo"] == sloName && labels["period"] == period {
				g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
				g.Set(m.GetGauge().GetValue())
				return g
			}
		}
	}
	t.Fatalf("no %s{slo=%q,period=%q}", name, sloName, period)
	return nil
}

func TestRatioCountsPageAndStatus(t *testing.T) {
	f := newFixture(t)
	// 50 requests, all failing: below min_events, no page.
	f.process(counts("api-requests", t0, 0, 50))
	f.tick(t0)
	if len(f.burnAlerts()) != 0 {
		t.Fatalf("paged below min_events: %v", f.burnAlerts())
	}
	f.process(counts("api-requests", t0, 0, 50))
	f.tick(t0.Add(time.Second))
	if got := fmt.Sprint(f.burnAlerts()); got != "[api-requests/page/1h-5m/firing api-requests/page/6h-30m/firing api-requests/ticket/3d-6h/firing]" {
		t.Fatalf("100 failed requests of 100: %v", got)
	}
	srv := httptest.NewServer(func() http.Handler { m := http.NewServeMux(); f.r.Register(m, nil); return m }())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/slo/api-requests")
	if err != nil {
		t.Fatal(err)
	}
	var st runner.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if st.SLI != "ratio" || len(st.Budgets) != 4 || st.Budgets[0].Consumed != 100 || st.Budgets[0].BudgetExact != "1/2" {
		t.Fatalf("status %+v", st)
	}
	if resp, _ := http.Get(srv.URL + "/api/v1/slo/nope"); resp.StatusCode != 404 {
		t.Fatalf("unknown SLO: %d", resp.StatusCode)
	}
	resp, _ = http.Get(srv.URL + "/api/v1/slo")
	var all struct{ SLOs []runner.Status }
	_ = json.NewDecoder(resp.Body).Decode(&all)
	if len(all.SLOs) != 2 {
		t.Fatalf("list: %d SLOs", len(all.SLOs))
	}
}

func TestTwoReplicasPublishOnce(t *testing.T) {
	f := newFixture(t)
	other, err := runner.New(context.Background(), runner.Config{Now: f.clock.Now}, f.bus, f.rules, bustest.Logger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	f.process(alert(klaxonv1.AlertStatus_ALERT_STATUS_FIRING, t0, nil))
	f.clock.Set(t0.Add(time.Minute))
	var wg sync.WaitGroup
	for _, r := range []*runner.Runner{f.r, other} {
		wg.Add(1)
		go func(r *runner.Runner) { defer wg.Done(); _ = r.Tick(context.Background()) }(r)
	}
	wg.Wait()
	if got := f.burnAlerts(); len(got) != 1 {
		t.Fatalf("two replicas published %v", got)
	}
}

func TestRedeliveredCountsAreCountedOnce(t *testing.T) {
	f := newFixture(t)
	env := counts("api-requests", t0, 90, 100)
	env.Id = "post-1"
	f.process(env)
	f.process(env) // JetStream redelivery after a crash before the ack
	st, err := f.r.Status(context.Background(), "default", "api-requests", t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := st[0].Budgets[0].Consumed; got != 10 {
		t.Fatalf("consumed %d, want 10: a redelivered count was added twice", got)
	}
}

// Bogus times cannot break an SLO's counters: a count stamped years in the
// future is taken as received (it would otherwise move the rings' newest
// minute ahead and make every real count "too old"), one from before 1970
// is dropped, and a resolved alert that claims to have started in 1900 marks
// at most the 366 days the counters hold (and returns at once).
func TestBogusTimesDoNotBreakCounters(t *testing.T) {
	f := newFixture(t)
	future := counts("api-requests", t0.Add(10*365*24*time.Hour), 90, 100)
	future.Id, future.ReceivedAt = "future", timestamppb.New(t0)
	f.process(future)
	past := counts("api-requests", time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), 0, 100)
	past.Id, past.ReceivedAt = "past", timestamppb.New(t0)
	f.process(past)
	real := counts("api-requests", t0, 95, 100)
	real.Id, real.ReceivedAt = "real", timestamppb.New(t0)
	f.process(real)
	st, err := f.r.Status(context.Background(), "default", "api-requests", t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := st[0].Budgets[0].Consumed; got != 15 {
		t.Fatalf("consumed %d, want 15 (10 from the future-stamped count taken as now, 5 real; the 1960 one dropped)", got)
	}

	ancient := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	end := t0
	env := alert(klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED, ancient, &end)
	env.ReceivedAt = timestamppb.New(t0)
	done := make(chan struct{})
	go func() { f.process(env); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a resolved alert from 1900 is still being marked after 10s")
	}
	st, err = f.r.Status(context.Background(), "default", "checkout-availability", t0)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Budgets[0].Consumed == 0 {
		t.Fatal("the outage up to now was not counted")
	}
}

// A matching alert received once, without endsAt and never resolved (its
// sender gone), stops counting resolve_timeout (5m) after it was received,
// as Alertmanager resolves it: the fast-burn page then resolves. Before,
// it counted every minute bad for ever.
func TestTimeSliceAlertNoLongerSentStopsCounting(t *testing.T) {
	f := newFixture(t)
	f.tick(t0)
	f.process(alert(klaxonv1.AlertStatus_ALERT_STATUS_FIRING, t0.Add(time.Minute), nil))
	for m := 1; m <= 60; m++ {
		f.tick(t0.Add(time.Duration(m) * time.Minute))
	}
	got := fmt.Sprint(f.burnAlerts())
	if !strings.Contains(got, "checkout-availability/page/1h-5m/firing") || !strings.Contains(got, "checkout-availability/page/1h-5m/resolved") {
		t.Fatalf("burn alerts %v, want the 1h page fired and resolved", got)
	}
}

// An upstream Alertmanager's webhook sends a firing alert without endsAt (the
// receiver strips it) and again only every repeat_interval; the alert is
// bad until it is sent resolved, as the engine keeps it firing. Before, it
// stopped counting resolve_timeout (5m) after receipt: the page resolved in
// the middle of the outage, and the resolved message's back-fill fired the
// pages again after recovery.
func TestWebhookAlertCountsUntilResolved(t *testing.T) {
	f := newFixture(t)
	f.tick(t0)
	firing := alert(klaxonv1.AlertStatus_ALERT_STATUS_FIRING, t0.Add(time.Minute), nil)
	firing.Source, firing.Id = "alertmanager", "am-1"
	f.process(firing)
	for m := 1; m <= 60; m++ {
		f.tick(t0.Add(time.Duration(m) * time.Minute))
	}
	st, err := f.r.Status(context.Background(), "default", "checkout-availability", t0.Add(60*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got := st[0].Budgets[0].Consumed; got != 60 {
		t.Errorf("after 60 minutes of outage, %d bad minutes counted, want 60", got)
	}
	want := []string{"checkout-availability/page/1h-5m/firing", "checkout-availability/page/6h-30m/firing", "checkout-availability/ticket/3d-6h/firing"}
	if got := f.burnAlerts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("during the outage: burn alerts %v\nwant %v", got, want)
	}
	end := t0.Add(60 * time.Minute)
	resolved := alert(klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED, t0.Add(time.Minute), &end)
	resolved.Source, resolved.Id, resolved.ReceivedAt = "alertmanager", "am-2", timestamppb.New(end)
	f.process(resolved)
	for m := 60; m <= 75; m++ {
		f.tick(t0.Add(time.Duration(m)*time.Minute + 30*time.Second))
	}
	// The fast page resolves with its 5m window after recovery and fires no
	// more; the 6h/30m page and the ticket stay open (59 bad minutes).
	want = append(want, "checkout-availability/page/1h-5m/resolved")
	if got := f.burnAlerts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the resolve: burn alerts %v\nwant %v", got, want)
	}
}

// A count redelivered within JetStream's 10-minute duplicate window is
// counted once however many other counts came in between (the derived
// consumer redelivers 1–10 s after any of its components failed), and a
// restart in between keeps the ids (they are in the KV record).
func TestRedeliveryAfterManyOtherCountsIsCountedOnce(t *testing.T) {
	f := newFixture(t)
	first := counts("api-requests", t0, 0, 1000)
	first.Id = "post-0"
	f.process(first)
	// 100 counts a second for 10 s, 10 requests each, all good.
	for i := 1; i <= 1000; i++ {
		f.clock.Set(t0.Add(time.Duration(i) * 10 * time.Millisecond))
		env := counts("api-requests", t0, 10, 10)
		env.Id = fmt.Sprintf("post-%d", i)
		f.process(env)
	}
	f.process(first) // redelivered: another component of the consumer had failed
	f.bus.Close()
	f.open()
	f.clock.Set(t0.Add(9 * time.Minute))
	f.process(first) // redelivered again after a restart
	st, err := f.r.Status(context.Background(), "default", "api-requests", t0.Add(9*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if b := st[0].Budgets[0]; b.Consumed != 1000 || b.Total != 1000+10000 {
		t.Fatalf("consumed %d of %d, want 1000 of 11000: a redelivered count was added again", b.Consumed, b.Total)
	}
}

// GetSLOReport{at} reports the windows containing at with everything counted
// in them: October's report asked for on 15 October (now 24 November) holds
// the outage of 25 October. Before, it counted only up to at.
func TestPastReportCountsItsWholeWindow(t *testing.T) {
	f := newFixture(t)
	good := counts("api-requests", time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC), 1000, 1000)
	good.Id = "oct-5"
	f.process(good)
	bad := counts("api-requests", time.Date(2026, 10, 25, 12, 0, 0, 0, time.UTC), 0, 100)
	bad.Id = "oct-25"
	f.process(bad)
	start := time.Date(2026, 10, 25, 12, 0, 0, 0, time.UTC)
	end := start.Add(10 * time.Minute)
	resolved := alert(klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED, start, &end)
	resolved.ReceivedAt = timestamppb.New(end)
	f.process(resolved)
	f.tick(t0)
	reps, err := runner.Admin{R: f.r}.SLOReport(context.Background(), "default", adminv1.ReportWindow_REPORT_WINDOW_MONTHLY,
		time.Date(2026, 10, 15, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range reps {
		got[r.GetName()] = fmt.Sprintf("%s–%s good %d of %d", r.GetStart().AsTime().Format(time.DateOnly), r.GetEnd().AsTime().Format(time.DateOnly), r.GetGood(), r.GetTotal())
	}
	want := map[string]string{
		"api-requests":          "2026-10-01–2026-11-01 good 1000 of 1100",
		"checkout-availability": "2026-10-01–2026-11-01 good 44630 of 44640", // 31 days, 10 bad minutes
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("October reports %v\nwant %v", got, want)
	}
}

// A burn alert whose publish fails is published by the SLO's next update:
// the record holds it as pending until it is out. Before, the record was
// written first and the alert then lost: the fast page's resolve was never
// sent (the record said resolved), and the page stayed open downstream.
func TestBurnAlertIsPublishedAfterAFailedPublish(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.tick(t0)
	f.process(alert(klaxonv1.AlertStatus_ALERT_STATUS_FIRING, t0.Add(time.Minute), nil))
	end := t0.Add(10 * time.Minute)
	resolved := alert(klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED, t0.Add(time.Minute), &end)
	resolved.ReceivedAt = timestamppb.New(end)
	for m := 1; m <= 12; m++ {
		if m == 10 {
			f.process(resolved)
		}
		f.tick(t0.Add(time.Duration(m) * time.Minute))
	}
	if got := fmt.Sprint(f.burnAlerts()); !strings.Contains(got, "page/1h-5m/firing") || strings.Contains(got, "resolved") {
		t.Fatalf("burn alerts %v, want the fast page firing", got)
	}
	// INGEST gone: every publish fails, the fast page's resolve first.
	st, err := f.bus.JS.Stream(ctx, bus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if err := f.bus.JS.DeleteStream(ctx, bus.StreamIngest); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(t0.Add(20 * time.Minute))
	if err := f.r.Tick(ctx); err == nil {
		t.Fatal("the resolve published with no INGEST stream")
	}
	if _, err := f.bus.JS.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	f.tick(t0.Add(21 * time.Minute))
	want := []string{"checkout-availability/page/1h-5m/resolved", "checkout-availability/page/6h-30m/firing", "checkout-availability/ticket/3d-6h/firing"}
	if got := f.burnAlerts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("burn alerts after INGEST is back %v\nwant %v", got, want)
	}
}

// State in a newer Klaxon's format (a rollback, or this replica not yet
// upgraded in a rolling upgrade) is left as it is, and this replica skips
// the count, instead of "corrupt SLO state; starting over", which wiped the
// SLO's counters of up to 400 days. Skipped, not failed: failing it held up
// the consumer that feeds policies and heartbeats too.
func TestStateOfANewerKlaxonIsNotOverwritten(t *testing.T) {
	f := newFixture(t)
	f.process(counts("api-requests", t0, 90, 100))
	kv, err := f.bus.JS.KeyValue(context.Background(), bus.BucketSLO)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), "default.api-requests")
	if err != nil {
		t.Fatal(err)
	}
	newer := append([]byte(nil), e.Value()...)
	_, k := binary.Uvarint(newer) // the counters' length, then their format version
	newer[k]++
	if _, err := kv.Put(context.Background(), "default.api-requests", newer); err != nil {
		t.Fatal(err)
	}
	f.process(counts("api-requests", t0.Add(time.Minute), 5, 10))
	f.tick(t0.Add(2 * time.Minute))
	after, err := kv.Get(context.Background(), "default.api-requests")
	if err != nil {
		t.Fatal(err)
	}
	if string(after.Value()) != string(newer) {
		t.Fatal("the newer record was overwritten")
	}
	if n, err := testutil.GatherAndCount(f.reg, "klaxon_slo_newer_state_total"); err != nil || n != 1 {
		t.Fatalf("klaxon_slo_newer_state_total: %d series, %v", n, err)
	}
	if _, err := f.r.Status(context.Background(), "default", "api-requests", t0); err == nil || !strings.Contains(err.Error(), "newer Klaxon") {
		t.Fatalf("status of a newer record: %v, want the cause named", err)
	}
}
