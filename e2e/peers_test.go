package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// requireBinary finds a peer binary. Under CI it must exist (.ci/run
// installs it); locally a missing peer skips with the install hint.
func requireBinary(t *testing.T, names []string, pkg string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%v not found: apt-get install -y %s", names, pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

type process struct {
	cmd    *exec.Cmd
	out    *harness.LogBuffer
	exited chan struct{}
}

func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), out: &harness.LogBuffer{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), p.out.String())
		}
	})
	return p
}

// TestRealAlertmanagerWebhook: a real Alertmanager process sends its webhook
// to Klaxon's receiver, and the alert reaches Klaxon's webhook target.
func TestRealAlertmanagerWebhook(t *testing.T) {
	am := requireBinary(t, []string{"prometheus-alertmanager", "alertmanager"}, "prometheus-alertmanager")
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})

	amAddr := harness.FreeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
route:
  receiver: klaxon
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: klaxon
    webhook_configs:
      - url: %s/api/v1/alertmanager
        send_resolved: true
`, k.URL())), 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, am, "--config.file="+cfg, "--storage.path="+dir, "--web.listen-address="+amAddr,
		"--cluster.listen-address=", "--log.level=debug")
	waitHTTP(t, "http://"+amAddr+"/-/ready")

	status, body := postJSON(t, "http://"+amAddr+"/api/v2/alerts",
		`[{"labels":{"alertname":"ViaRealAlertmanager","severity":"critical"},"annotations":{"summary":"through AM"}}]`)
	if status != 200 {
		t.Fatalf("alertmanager rejected the alert: %d %s", status, body)
	}
	harness.Eventually(t, 30*time.Second, "the alert, sent by Alertmanager, at Klaxon's webhook target", func() bool {
		return sink.AlertsByLabel("alertname", "firing")["ViaRealAlertmanager"] >= 1
	})
	got := sink.Messages()[0].Alerts[0]
	if got.Labels["severity"] != "critical" || got.Annotations["summary"] != "through AM" {
		t.Errorf("alert changed on the way: %+v", got)
	}
}

// TestRealPrometheusAlerts: a real Prometheus server with an always-firing
// rule and alerting.alertmanagers pointed at Klaxon posts to /api/v2/alerts,
// exactly as the Loki ruler does; the alert reaches the webhook target.
func TestRealPrometheusAlerts(t *testing.T) {
	prom := requireBinary(t, []string{"prometheus"}, "prometheus")
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})

	dir := t.TempDir()
	ruleFile := filepath.Join(dir, "always.yml")
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(ruleFile, []byte(`
groups:
  - name: always
    interval: 1s
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        labels: {severity: info, team: sre}
        annotations: {summary: "always firing"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
global:
  evaluation_interval: 1s
rule_files: [%q]
alerting:
  alertmanagers:
    - api_version: v2
      static_configs:
        - targets: [%q]
`, ruleFile, k.HTTP)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := harness.FreeAddr(t)
	startProcess(t, prom, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--log.level=debug",
		// The first evaluation can run before the Alertmanager list is
		// discovered (that alert is dropped); resend every second, not minute.
		"--rules.alert.resend-delay=1s")
	harness.Eventually(t, 60*time.Second, "Prometheus' AlwaysFiring alert at Klaxon's webhook target", func() bool {
		return sink.AlertsByLabel("alertname", "firing")["AlwaysFiring"] >= 1
	})
	a := sink.Messages()[0].Alerts[0]
	if a.Labels["team"] != "sre" || a.Annotations["summary"] != "always firing" {
		t.Errorf("alert %+v", a)
	}
}

// TestAlertmanagerHAPairNotifiesOnce: two Alertmanager replicas that both
// send the same webhook (a split HA pair; a healthy pair may also both send
// around a failover) produce one notification in Klaxon, not two.
func TestAlertmanagerHAPairNotifiesOnce(t *testing.T) {
	am := requireBinary(t, []string{"prometheus-alertmanager", "alertmanager"}, "prometheus-alertmanager")
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})

	var addrs []string
	for i := 0; i < 2; i++ {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "alertmanager.yml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
route:
  receiver: klaxon
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: klaxon
    webhook_configs:
      - url: %s/api/v1/alertmanager
`, k.URL())), 0o644); err != nil {
			t.Fatal(err)
		}
		addr := harness.FreeAddr(t)
		startProcess(t, am, "--config.file="+cfg, "--storage.path="+dir, "--web.listen-address="+addr, "--cluster.listen-address=")
		waitHTTP(t, "http://"+addr+"/-/ready")
		addrs = append(addrs, addr)
	}
	// Prometheus sends every alert to every Alertmanager replica.
	alert := `[{"labels":{"alertname":"HAPair","severity":"critical"},"startsAt":"` +
		time.Now().UTC().Add(-time.Minute).Format(time.RFC3339) + `"}]`
	for _, a := range addrs {
		if code, body := postJSON(t, "http://"+a+"/api/v2/alerts", alert); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	// Both replicas have sent their webhook once Klaxon stored one and
	// counted the other as a duplicate.
	harness.Eventually(t, 20*time.Second, "both replicas' webhooks received", func() bool {
		return metricValue(t, k.URL(), `klaxon_receiver_items_duplicate_total{endpoint="alertmanager"}`) >= 1
	})
	harness.Eventually(t, 10*time.Second, "the notification", func() bool {
		return sink.AlertsByLabel("alertname", "firing")["HAPair"] >= 1
	})
	time.Sleep(2 * time.Second) // a second notification would arrive within group_interval
	if n := sink.AlertsByLabel("alertname", "firing")["HAPair"]; n != 1 {
		t.Fatalf("%d notifications for one alert sent by two replicas, want 1", n)
	}
}
