// Package notifytest holds what the integration tests share: Alertmanager's
// default templates, sample notifications and golden files.
package notifytest

import (
	"bytes"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	"github.com/klaxon-sh/klaxon/services/notify"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden files")

// Epoch is the fixed time of every sample notification (golden files).
var Epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Template returns Alertmanager's default templates linking to
// http://klaxon.example:9095.
func Template(t testing.TB) *template.Template {
	t.Helper()
	tm, err := template.FromGlobs(nil)
	if err != nil {
		t.Fatal(err)
	}
	tm.ExternalURL, _ = url.Parse("http://klaxon.example:9095")
	return tm
}

// Notification is a group of one alert (HighLatency on api-1), firing or
// resolved.
func Notification(resolved bool) *notify.Notification {
	a := &alert.Alert{Alert: model.Alert{
		Labels: model.LabelSet{"alertname": "HighLatency", "severity": "critical", "instance": "api-1", "job": "api"},
		Annotations: model.LabelSet{
			"summary":       "p99 latency above 2s",
			"description":   "api-1 answers slowly",
			"runbook_url":   "https://runbooks.example/high-latency",
			"dashboard_url": "https://grafana.example/d/api",
		},
		StartsAt:     Epoch.Add(-10 * time.Minute),
		GeneratorURL: "http://prometheus.example/graph?g0.expr=up",
	}}
	if resolved {
		a.EndsAt = Epoch.Add(-time.Minute)
	}
	return &notify.Notification{
		Tenant:         "default",
		Receiver:       "team-a",
		GroupKey:       `{}/{severity="critical"}:{alertname="HighLatency"}`,
		GroupLabels:    model.LabelSet{"alertname": "HighLatency"},
		Alerts:         []*alert.Alert{a},
		IdempotencyKey: "k1",
		Now:            Epoch,
	}
}

// Golden compares got with testdata/name.golden (rewritten with -update).
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file (run with -update if intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
