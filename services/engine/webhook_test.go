package engine

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// upstreamRules: the engine's resolve_timeout is 1m (baseRoute), far
// shorter than the upstream Alertmanager's repeat_interval (4h).
const upstreamRules = baseRoute + `
route:
  receiver: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 12h
`

// engineRun drives an Engine and its Dispatcher on a fake clock: send
// processes envelopes as one INGEST batch at the clock's time, advance
// flushes every group due up to an instant at its due time; both collect
// what is notified (acknowledged as published).
type engineRun struct {
	t   *testing.T
	e   *Engine
	d   *Dispatcher
	st  *MemStore
	now time.Time
	seq uint64
	got []string
}

func newEngineRun(t *testing.T, tn *ruleset.Tenant) *engineRun {
	r := &engineRun{t: t, st: NewMemStore(), now: t0}
	rules := ruleset.NewStaticHolder(&ruleset.Set{Tenants: map[string]*ruleset.Tenant{tn.Name: tn}})
	r.e = New(nil, rules, bustest.Logger(t), prometheus.NewRegistry(), WithClock(func() time.Time { return r.now }))
	r.d = NewDispatcher(DispatcherConfig{Rules: rules.Tenant, Store: r.st})
	return r
}

func (r *engineRun) published(ns []*klaxonv1.Notification) {
	r.t.Helper()
	must(r.t, r.d.Ack(context.Background(), ns...))
	for _, n := range ns {
		r.got = append(r.got, describe(n))
	}
}

func (r *engineRun) advance(to time.Duration) {
	r.t.Helper()
	for {
		next, ok := r.d.NextDue()
		if !ok || next.After(t0.Add(to)) {
			break
		}
		r.now = next
		ns, err := r.d.Tick(context.Background(), next)
		must(r.t, err)
		r.published(ns)
	}
	r.now = t0.Add(to)
}

func (r *engineRun) send(at time.Duration, envs ...*klaxonv1.Envelope) {
	r.t.Helper()
	r.advance(at)
	seqs := make([]uint64, len(envs))
	for i, env := range envs {
		r.seq++
		seqs[i] = r.seq
		env.ReceivedAt = timestamppb.New(r.now)
	}
	must(r.t, r.e.ProcessBatch(context.Background(), r.d, envs, seqs))
	ns := r.e.toPublish
	r.e.toPublish = nil
	r.published(ns)
}

// heldAlert is the tenant's alert with fp as the alert APIs show it at t0+at
// (nil: none unresolved).
func (r *engineRun) heldAlert(fp string, at time.Duration) *Alert {
	r.t.Helper()
	gs, err := r.st.Load(context.Background())
	must(r.t, err)
	if v := Views(nil, gs, nil, t0.Add(at), false)[fp]; v != nil {
		return v.Alert
	}
	return nil
}

// webhookEnvelope is an alert as the receiver puts a webhook alert from an
// upstream Alertmanager into INGEST: status firing or resolved, no endsAt
// while firing (it strips the upstream's now+resolve_timeout), the
// upstream's startsAt. resolvedAt zero: firing.
func webhookEnvelope(spec string, startsAt, resolvedAt time.Time) *klaxonv1.Envelope {
	a := alertOf(spec, startsAt, 0)
	if !resolvedAt.IsZero() {
		a.Status = klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED
		a.EndsAt = timestamppb.New(resolvedAt)
	}
	return &klaxonv1.Envelope{Tenant: "team-a", Source: "alertmanager", Payload: &klaxonv1.Envelope_Alert{Alert: a}}
}

func apiEnvelope(a *klaxonv1.Alert) *klaxonv1.Envelope {
	return &klaxonv1.Envelope{Tenant: "team-a", Source: "api-v2", Payload: &klaxonv1.Envelope_Alert{Alert: a}}
}

// A user forwarding an upstream Alertmanager's notifications to Klaxon by
// webhook relies on Alertmanager's semantics for a webhook consumer: an
// alert fires until the upstream sends it resolved. The upstream re-sends an
// unchanged firing group only every repeat_interval (4h by default), and
// its alerts carry no end Klaxon keeps; Klaxon gave them resolve_timeout
// as it does an API client's, so a resolution was notified minutes after
// each send and the alert fired again at the upstream's next repeat.
func TestWebhookAlertFiresUntilResolved(t *testing.T) {
	r := newEngineRun(t, loadTenant(t, "team-a", upstreamRules))
	fp := model.Fingerprint(model.LabelsToSignature(map[string]string{"alertname": "A", "id": "1"})).String()
	r.send(0, webhookEnvelope("alertname=A,id=1", t0, time.Time{}))
	r.advance(4 * time.Hour)
	if want := []string{"30s default firing [1]"}; !slices.Equal(r.got, want) {
		t.Fatalf("notifications in the 4h before the upstream's repeat\n got %q\nwant %q", r.got, want)
	}
	if a := r.heldAlert(fp, 4*time.Hour); a == nil || !a.EndsAt.IsZero() || a.Timeout {
		t.Fatalf("4h after the upstream sent it firing, the alert is %+v; want it firing, with no end", a)
	}
	r.send(4*time.Hour, webhookEnvelope("alertname=A,id=1", t0, time.Time{})) // the upstream's repeat
	r.advance(8 * time.Hour)
	if want := []string{"30s default firing [1]"}; !slices.Equal(r.got, want) {
		t.Fatalf("notifications while the upstream says it fires\n got %q\nwant %q", r.got, want)
	}
	// As stored (the next leader loads it), it is still firing a day on.
	gs, err := r.st.Load(context.Background())
	must(t, err)
	data, err := encodeGroup(gs[0])
	must(t, err)
	var loaded GroupState
	must(t, decodeGroup(data, &loaded))
	if a := loaded.Alerts.Get(fp); a == nil || a.ResolvedAt(t0.Add(32*time.Hour)) {
		t.Fatalf("stored and loaded again, the alert is %+v; want it firing", a)
	}
	r.send(9*time.Hour, webhookEnvelope("alertname=A,id=1", t0, t0.Add(9*time.Hour-time.Minute)))
	r.advance(10 * time.Hour)
	want := []string{"30s default firing [1]", "9h0m30s default resolved [1-]"}
	if !slices.Equal(r.got, want) {
		t.Fatalf("notifications\n got %q\nwant %q", r.got, want)
	}
	if a := r.heldAlert(fp, 10*time.Hour); a != nil {
		t.Fatalf("after the upstream resolved it, the alert is still listed: %+v", a)
	}
}

// The same alert may also reach Klaxon from an API client (Prometheus
// sending to both). An upstream Alertmanager's open-ended firing alert is
// the latest end, so, as in Alertmanager's merge of a later explicit end,
// a firing update with an end (its own or resolve_timeout's) does not
// shorten it; an update that resolves it resolves it, and a webhook
// firing after an API client's alert makes it open-ended. Before, the
// merge compared the missing end as the earliest instant.
func TestWebhookAlertMergesWithAPIAlerts(t *testing.T) {
	r := newEngineRun(t, loadTenant(t, "team-a", upstreamRules))
	fp := model.Fingerprint(model.LabelsToSignature(map[string]string{"alertname": "A", "id": "1"})).String()
	r.send(0, webhookEnvelope("alertname=A,id=1", t0, time.Time{}))
	r.send(time.Minute, apiEnvelope(alertOf("alertname=A,id=1", t0, 10*time.Minute))) // explicit end
	r.send(2*time.Minute, apiEnvelope(alertOf("alertname=A,id=1", t0, 0)))            // resolve_timeout
	r.advance(time.Hour)
	if a := r.heldAlert(fp, time.Hour); a == nil || !a.EndsAt.IsZero() {
		t.Fatalf("after API updates with an end, the webhook's alert is %+v; want it firing, open-ended", a)
	}
	resolved := alertOf("alertname=A,id=1", t0.Add(time.Hour), -1)
	resolved.StartsAt = timestamppb.New(t0)
	r.send(time.Hour, apiEnvelope(resolved))
	r.advance(2 * time.Hour)
	want := []string{"30s default firing [1]", "1h0m30s default resolved [1-]"}
	if !slices.Equal(r.got, want) {
		t.Fatalf("notifications\n got %q\nwant %q", r.got, want)
	}
	// An API client's alert, then the upstream's webhook for it.
	r.got = nil
	r.send(3*time.Hour, apiEnvelope(alertOf("alertname=A,id=2", t0.Add(3*time.Hour), 0)))
	r.send(3*time.Hour+30*time.Second, webhookEnvelope("alertname=A,id=2", t0.Add(3*time.Hour), time.Time{}))
	r.advance(6 * time.Hour)
	if want := []string{"3h0m30s default firing [2]"}; !slices.Equal(r.got, want) {
		t.Fatalf("notifications of an API alert the upstream then sent firing\n got %q\nwant %q", r.got, want)
	}
}
