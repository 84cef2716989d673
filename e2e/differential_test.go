package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// differentialConfig is one alertmanager.yml used unchanged by both a real
// Alertmanager and Klaxon: several routes, group_by, continue, inhibition and
// a mute interval, on a compressed timescale.
const differentialConfig = `
route:
  receiver: default
  group_by: [alertname, cluster]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - receiver: database
      matchers: ['team="db"']
      group_by: [alertname]
      continue: true
    - receiver: pager
      matchers: ['severity="critical"']
    - receiver: muted
      matchers: ['team="batch"']
      mute_time_intervals: [always]
    - receiver: everything
      matchers: ['team=~"web|db"']
      group_by: ['...']
receivers:
  - name: default
    webhook_configs: [{url: "SINK/default", send_resolved: true}]
  - name: database
    webhook_configs: [{url: "SINK/database", send_resolved: true}]
  - name: pager
    webhook_configs: [{url: "SINK/pager", send_resolved: false}]
  - name: muted
    webhook_configs: [{url: "SINK/muted", send_resolved: true}]
  - name: everything
    webhook_configs: [{url: "SINK/everything", send_resolved: true}]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname, cluster]
time_intervals:
  - name: always
    time_intervals:
      - times: [{start_time: "00:00", end_time: "24:00"}]
`

// notification is what both systems are compared on.
type notification struct {
	Receiver string
	Group    string
	Status   string
	Alerts   string
}

func normalize(msgs []harness.WebhookMessage) []notification {
	var out []notification
	for _, m := range msgs {
		gl, _ := json.Marshal(m.GroupLabels)
		var alerts []string
		for _, a := range m.Alerts {
			ls, _ := json.Marshal(a.Labels)
			alerts = append(alerts, a.Status+string(ls))
		}
		sort.Strings(alerts)
		out = append(out, notification{Receiver: m.Receiver, Group: string(gl), Status: m.Status, Alerts: strings.Join(alerts, " ")})
	}
	return out
}

// byGroup orders notifications per (receiver, group) as each group sends
// them; the interleaving of different groups is timing, not semantics.
func byGroup(ns []notification) map[string][]string {
	out := map[string][]string{}
	for _, n := range ns {
		k := n.Receiver + " " + n.Group
		out[k] = append(out[k], n.Status+": "+n.Alerts)
	}
	return out
}

func alertJSON(labels map[string]string, endsAt *time.Time) string {
	m := map[string]any{"labels": labels}
	if endsAt != nil {
		m["endsAt"] = endsAt.UTC().Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestDifferentialAgainstAlertmanager feeds a real Alertmanager and Klaxon
// the same alerts with the same configuration and requires the same
// notifications: receiver, group labels, alert sets and status, in the same
// order per group.
func TestDifferentialAgainstAlertmanager(t *testing.T) {
	amBin := requireBinary(t, []string{"prometheus-alertmanager", "alertmanager"}, "prometheus-alertmanager")
	amSink, kxSink := harness.NewSink(t), harness.NewSink(t)

	rules := harness.WriteRules(t, map[string]string{"default/alertmanager.yml": strings.ReplaceAll(differentialConfig, "SINK", kxSink.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})

	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(differentialConfig, "SINK", amSink.URL())), 0o644); err != nil {
		t.Fatal(err)
	}
	amAddr := harness.FreeAddr(t)
	startProcess(t, amBin, "--config.file="+cfg, "--storage.path="+dir, "--web.listen-address="+amAddr, "--cluster.listen-address=")
	waitHTTP(t, "http://"+amAddr+"/-/ready")

	post := func(alerts ...string) {
		body := "[" + strings.Join(alerts, ",") + "]"
		if code, resp := postJSON(t, "http://"+amAddr+"/api/v2/alerts", body); code != 200 {
			t.Fatalf("alertmanager: %d %s", code, resp)
		}
		if code, resp := k.Post("/api/v2/alerts", body); code != 200 {
			t.Fatalf("klaxon: %d %s", code, resp)
		}
	}
	l := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	settle := func() { time.Sleep(5 * time.Second) } // > group_wait + 2 × group_interval

	// Phase 1: a mix that exercises every route.
	post(
		alertJSON(l("alertname", "HighLatency", "cluster", "eu", "team", "web", "severity", "warning", "instance", "a"), nil),
		alertJSON(l("alertname", "HighLatency", "cluster", "eu", "team", "web", "severity", "warning", "instance", "b"), nil),
		alertJSON(l("alertname", "DiskFull", "cluster", "us", "team", "db", "severity", "critical"), nil),
		alertJSON(l("alertname", "JobFailed", "cluster", "eu", "team", "batch"), nil),
		alertJSON(l("alertname", "Other", "cluster", "ap", "instance", "x"), nil),
		alertJSON(l("alertname", "Other", "cluster", "ap", "instance", "y"), nil),
	)
	settle()
	// Phase 2: a critical HighLatency inhibits a new warning of the same
	// alertname and cluster; a new db alert joins the db group; a third
	// alert joins the Other group (group_interval, not group_wait).
	post(
		alertJSON(l("alertname", "HighLatency", "cluster", "eu", "team", "web", "severity", "critical", "instance", "c"), nil),
		alertJSON(l("alertname", "HighLatency", "cluster", "eu", "team", "web", "severity", "warning", "instance", "d"), nil),
		alertJSON(l("alertname", "DiskFull", "cluster", "eu", "team", "db", "severity", "warning"), nil),
		alertJSON(l("alertname", "Other", "cluster", "ap", "instance", "z"), nil),
	)
	settle()
	// Phase 3: resolve some.
	past := time.Now().Add(-time.Second)
	post(
		alertJSON(l("alertname", "DiskFull", "cluster", "us", "team", "db", "severity", "critical"), &past),
		alertJSON(l("alertname", "Other", "cluster", "ap", "instance", "x"), &past),
	)
	settle()

	am, kx := byGroup(normalize(amSink.Messages())), byGroup(normalize(kxSink.Messages()))
	if len(am) == 0 {
		t.Fatal("Alertmanager sent nothing: the test setup is broken")
	}
	keys := map[string]bool{}
	for k := range am {
		keys[k] = true
	}
	for k := range kx {
		keys[k] = true
	}
	var diffs []string
	for k := range keys {
		if fmt.Sprint(am[k]) != fmt.Sprint(kx[k]) {
			diffs = append(diffs, fmt.Sprintf("group %s\n  alertmanager: %q\n  klaxon:       %q", k, am[k], kx[k]))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%d groups differ:\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
}
