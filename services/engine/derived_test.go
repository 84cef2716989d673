package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/engine/silence"
	"github.com/klaxon-sh/klaxon/services/policy"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// derivedRules: the example restart policies, a page that inhibits the
// ticket of the same pod while it fires (a derived alert inhibiting a
// derived alert), and a namespace outage that inhibits restart pages in
// its namespace (an ordinary alert inhibiting a derived one).
const derivedRules = baseRoute + `
route:
  receiver: default
  group_by: [alertname, namespace, pod]
  group_wait: 30s
  group_interval: 1m
  repeat_interval: 4h
inhibit_rules:
  - source_matchers: ['alertname="FrequentRestarts"']
    target_matchers: ['alertname="RecurringRestarts"']
    equal: [namespace, pod]
  - source_matchers: ['alertname="NamespaceDown"']
    target_matchers: ['alertname="FrequentRestarts"']
    equal: [namespace]
policies:
  - name: restarts-short
    match: ['alertname="KubePodRestart"']
    key: [namespace, pod]
    threshold: 3
    window: 15m
    labels: {alertname: FrequentRestarts, severity: critical}
  - name: restarts-long
    match: ['alertname="KubePodRestart"']
    key: [namespace, pod]
    threshold: 3
    window: 7d
    labels: {alertname: RecurringRestarts, severity: info}
`

// TestDerivedAlertsAreSilencedAndInhibited feeds the dispatcher the derived
// alerts exactly as the policy evaluator publishes them to INGEST: a
// silenced one is not notified, an inhibited one is not either, and one
// inhibited by a derived page is notified once that page resolves.
func TestDerivedAlertsAreSilencedAndInhibited(t *testing.T) {
	ctx := context.Background()
	tn := loadTenant(t, "default", derivedRules)
	b := bustest.New(t)
	now := t0
	ev, err := policy.New(ctx, policy.Config{Now: func() time.Time { return now }}, b,
		ruleset.NewStaticHolder(&ruleset.Set{Tenants: map[string]*ruleset.Tenant{"default": tn}}), bustest.Logger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	sim, err := NewSim(tn, t0)
	if err != nil {
		t.Fatal(err)
	}
	// shop/web-2's restart page is silenced (as amtool or klaxonctl would).
	if _, err := sim.Silences.Set(ctx, &silence.Silence{Tenant: "default", CreatedBy: "test", EndsAt: t0.Add(24 * time.Hour),
		Matchers: []silence.Matcher{{Name: "alertname", Value: "FrequentRestarts", IsEqual: true}, {Name: "pod", Value: "web-2", IsEqual: true}}}); err != nil {
		t.Fatal(err)
	}
	// The batch namespace is down: its restart pages are inhibited.
	sim.Ingest(t0, &klaxonv1.Envelope{Payload: &klaxonv1.Envelope_Alert{Alert: alertOf("alertname=NamespaceDown,namespace=batch", t0, time.Hour)}})

	// Four restarts of each pod in four minutes: both policies fire for each.
	for i := 0; i < 4; i++ {
		now = t0.Add(time.Duration(i) * time.Minute)
		for _, pod := range []string{"shop/web-1", "shop/web-2", "batch/job-1"} {
			ns, name, _ := strings.Cut(pod, "/")
			env := &klaxonv1.Envelope{Tenant: "default", Source: "api-v2", Payload: &klaxonv1.Envelope_Alert{Alert: &klaxonv1.Alert{
				Labels:   map[string]string{"alertname": "KubePodRestart", "namespace": ns, "pod": name},
				StartsAt: timestamppb.New(now), Fingerprint: "fp-" + pod, Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING,
			}}}
			if err := ev.Process(ctx, env); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got []string
	seen := 0
	feed := func(at time.Time) {
		t.Helper()
		envs := publishedDerived(t, b)
		for _, env := range envs[seen:] {
			sim.Ingest(at, env)
		}
		seen = len(envs)
	}
	advance := func(to time.Time) {
		for _, n := range sim.Advance(to) {
			got = append(got, describeDerived(n))
		}
	}
	advance(now) // Ingest advances the clock too, but drops what it flushes
	feed(now)
	if seen != 6 {
		t.Fatalf("%d derived alerts published, want 6 (2 policies × 3 pods)", seen)
	}
	advance(t0.Add(10 * time.Minute))
	want := []string{
		"30s NamespaceDown/batch/ firing",
		"3m30s FrequentRestarts/shop/web-1 firing",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("notifications\n got %q\nwant %q", got, want)
	}

	// 15 minutes after the first restarts the pages resolve: web-1's
	// resolution is notified, web-2's (silenced) and job-1's (inhibited,
	// never notified) are not; with the pages gone nothing inhibits the
	// tickets any more.
	now = t0.Add(15 * time.Minute)
	if err := ev.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	got = nil
	advance(now)
	feed(now)
	if seen != 9 {
		t.Fatalf("%d derived alerts published, want 9 (3 pages resolved)", seen)
	}
	advance(t0.Add(30 * time.Minute))
	slices.Sort(got)
	want = []string{ // at the groups' next group_interval flush
		"15m30s FrequentRestarts/shop/web-1 resolved",
		"15m30s RecurringRestarts/batch/job-1 firing",
		"15m30s RecurringRestarts/shop/web-1 firing",
		"15m30s RecurringRestarts/shop/web-2 firing",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("notifications after the pages resolved\n got %q\nwant %q", got, want)
	}
}

// publishedDerived reads the policy's derived alerts from INGEST, in order,
// decoded from the bytes the evaluator published.
func publishedDerived(t *testing.T, b *bus.Bus) []*klaxonv1.Envelope {
	t.Helper()
	ctx := context.Background()
	s, err := b.JS.Stream(ctx, bus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*klaxonv1.Envelope
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		var env klaxonv1.Envelope
		if err := proto.Unmarshal(m.Data, &env); err != nil {
			t.Fatal(err)
		}
		if env.Source == policy.Source {
			if m.Subject != bus.IngestSubject("default", policy.Source) {
				t.Fatalf("derived alert on %s", m.Subject)
			}
			out = append(out, &env)
		}
	}
	return out
}

// describeDerived renders each alert of a notification as
// "<offset> <alertname>/<namespace>/<pod> <status>".
func describeDerived(n *klaxonv1.Notification) string {
	var parts []string
	for _, a := range n.Alerts {
		st := "firing"
		if a.Status == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED {
			st = "resolved"
		}
		parts = append(parts, fmt.Sprintf("%v %s/%s/%s %s", n.CreatedAt.AsTime().Sub(t0), a.Labels["alertname"], a.Labels["namespace"], a.Labels["pod"], st))
	}
	return strings.Join(parts, "; ")
}
