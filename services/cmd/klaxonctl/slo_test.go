package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/admin"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/ruleset"
	"github.com/klaxon-sh/klaxon/services/slo/runner"
)

const sloRules = `route:
  receiver: sink
receivers:
  - name: sink
slos:
  - name: checkout-availability
    objective: 99.9
    period: 30d
    bad_alerts: ['alertname="CheckoutDown"']
    time_zone: Europe/Berlin
    labels: {team: payments}
  - name: api-availability
    objective: 99.5
    period: 30d
    events: {}
    min_events: 100
`

// sloServer is an admin API whose SLO service is the real runner over a
// real bus, with counters fed as the INGEST consumer would and the clock
// fixed at `at`.
func sloServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "default"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "default", "klaxon.yml"), []byte(sloRules), 0o644); err != nil {
		t.Fatal(err)
	}
	holder, err := ruleset.NewHolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return at }
	return startServer(t, func(cfg *admin.Config) {
		r, err := runner.New(context.Background(), runner.Config{Now: now}, cfg.Bus, holder, bustest.Logger(t), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		process := func(env *klaxonv1.Envelope) {
			env.Tenant = "default"
			if err := r.Process(context.Background(), env); err != nil {
				t.Fatal(err)
			}
		}
		// CheckoutDown fired for the ten minutes before at−10m: ten bad minutes.
		start, end := at.Add(-20*time.Minute), at.Add(-10*time.Minute)
		process(&klaxonv1.Envelope{Source: "api-v2", ReceivedAt: timestamppb.New(end), Payload: &klaxonv1.Envelope_Alert{Alert: &klaxonv1.Alert{
			Labels: map[string]string{"alertname": "CheckoutDown"}, Fingerprint: "fp-checkout", Status: klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED,
			StartsAt: timestamppb.New(start), EndsAt: timestamppb.New(end),
		}}})
		// api-availability: 10,000 good requests two hours ago, 10 of 1,000
		// failing five minutes ago.
		for i, c := range []struct {
			at          time.Time
			good, total int64
		}{{at.Add(-2 * time.Hour), 10000, 10000}, {at.Add(-5 * time.Minute), 990, 1000}} {
			process(&klaxonv1.Envelope{Source: "slo", Id: fmt.Sprintf("post-%d", i), Payload: &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{
				Kind: "slo", Name: "api-availability", Time: timestamppb.New(c.at), Good: c.good, Total: c.total,
			}}})
		}
		cfg.Rules = holder
		cfg.SLOs = runner.Admin{R: r}
		cfg.Now = now
	})
}

func TestSLOGolden(t *testing.T) {
	s := sloServer(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"slo-status.table", []string{"slo", "status"}},
		{"slo-status.json", []string{"-o", "json", "slo", "status"}},
		{"slo-status-one.table", []string{"slo", "status", "api-availability"}},
		{"slo-report.json", []string{"slo", "report", "-o", "json"}},
		{"slo-report-month.table", []string{"slo", "report", "--period", "month"}},
		{"slo-report-year.json", []string{"slo", "report", "--period", "year", "-o", "json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := s.ctl(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, tc.name, out)
		})
	}
	code, _, errOut := s.ctl(t, "slo", "status", "nope")
	if code != 1 || errOut == "" {
		t.Fatalf("unknown SLO: exit %d, %q", code, errOut)
	}
}
