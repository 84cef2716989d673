package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// tailLine is the part of `klaxonctl tail --output=json` a test reads.
type tailLine struct {
	Subject  string `json:"subject"`
	Envelope *struct {
		Tenant string `json:"tenant"`
		Source string `json:"source"`
		Alert  *struct {
			Labels map[string]string `json:"labels"`
		} `json:"alert"`
	} `json:"envelope"`
	Notification *tailNotification `json:"notification"`
	Delivery     *struct {
		Outcome      string           `json:"outcome"`
		Notification tailNotification `json:"notification"`
	} `json:"delivery"`
}

type tailNotification struct {
	Receiver       string `json:"receiver"`
	IdempotencyKey string `json:"idempotency_key"`
	Alerts         []struct {
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// TestKlaxonctlTailShowsAlertAndItsNotification is the admin issue's "done
// when": `klaxonctl tail` shows, live, an alert posted over HTTP and the
// notification it caused.
func TestKlaxonctlTailShowsAlertAndItsNotification(t *testing.T) {
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})
	tailPostedAlert(t, k.GRPC, k)
	if len(sink.Messages()) == 0 {
		t.Fatal("the sink got nothing, yet tail said it was delivered")
	}
}

// TestKlaxonctlTailOnAdminTarget: the admin target alone, in its own
// process, tails what the other targets do on the same NATS.
func TestKlaxonctlTailOnAdminTarget(t *testing.T) {
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	front := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Target: "receiver,engine,notifier", NATSListen: true})
	adm := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Target: "admin",
		NATSURL: "nats://" + front.NATS, Extra: []string{"--nats.replicas", "1"}})
	tailPostedAlert(t, adm.GRPC, front)
}

// startTail runs `klaxonctl tail` against grpcAddr until the test ends,
// waits until it is live, and returns its output and its log.
func startTail(t *testing.T, grpcAddr string, flags ...string) (io.Reader, *harness.LogBuffer) {
	t.Helper()
	ctl := exec.Command(harness.Binary(t, "klaxonctl"), append(append([]string{"--addr", grpcAddr}, flags...), "tail")...)
	stdout, err := ctl.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &harness.LogBuffer{}
	ctl.Stderr = stderr
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctl.Process.Kill(); _ = ctl.Wait() })
	harness.Eventually(t, 20*time.Second, "klaxonctl tail to be live", func() bool {
		return strings.Contains(stderr.String(), "tailing tenant")
	})
	return stdout, stderr
}

// tailPostedAlert runs `klaxonctl tail --output=json` against grpcAddr,
// posts an alert to k, and waits for three lines: the envelope, the
// notification routed for it, and that notification's successful delivery.
func tailPostedAlert(t *testing.T, grpcAddr string, k *harness.Klaxon) {
	t.Helper()
	stdout, stderr := startTail(t, grpcAddr, "--output=json")

	lines := make(chan tailLine, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var l tailLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("tail printed a line that is not JSON: %q", sc.Text())
				continue
			}
			lines <- l
		}
		close(lines)
	}()

	if code, body := k.Post("/api/v2/alerts", `[{"labels":{"alertname":"TailMe","severity":"page"},"startsAt":"2026-11-24T10:00:00Z"}]`); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}

	var sawIn, sawOut bool
	var key string // of the notification the alert caused
	timeout := time.After(30 * time.Second)
	for !sawIn || !sawOut {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("tail ended: %s", stderr.String())
			}
			if e := l.Envelope; e != nil && e.Alert != nil && e.Alert.Labels["alertname"] == "TailMe" {
				if e.Tenant != "default" || e.Source != "api-v2" || l.Subject != "klaxon.in.default.api-v2" {
					t.Fatalf("envelope line: %+v", l)
				}
				sawIn = true
			}
			if n := l.Notification; n != nil && n.Receiver == "sink" && len(n.Alerts) == 1 && n.Alerts[0].Labels["alertname"] == "TailMe" {
				if !sawIn {
					t.Fatal("the notification was shown before the alert that caused it")
				}
				key = n.IdempotencyKey
			}
			if d := l.Delivery; d != nil && key != "" && d.Notification.IdempotencyKey == key {
				if d.Outcome != "success" || d.Notification.Receiver != "sink" {
					t.Fatalf("delivery line: %+v", d)
				}
				sawOut = true
			}
		case <-timeout:
			t.Fatalf("tail did not show the alert (%v), its notification (%q) and its delivery (%v); stderr: %s", sawIn, key, sawOut, stderr.String())
		}
	}
}

// TestKlaxonctlAgainstRunningKlaxon: the unary verbs work against a real
// server, and a stopped server gives the helpful error.
func TestKlaxonctlAgainstRunningKlaxon(t *testing.T) {
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})
	ctl := func(args ...string) (string, error) {
		out, err := exec.Command(harness.Binary(t, "klaxonctl"), append([]string{"--addr", k.GRPC}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := ctl("health"); err != nil || out != "SERVING\n" {
		t.Fatalf("health: %v\n%s", err, out)
	}
	// Alertmanager's probe paths answer as /healthz and /readyz (they were
	// 404: probes written for Alertmanager failed).
	for _, path := range []string{"/-/healthy", "/-/ready"} {
		resp, err := http.Get(k.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
	// Each service by name, as grpc_health_probe -service asks (it was
	// "unknown service").
	if out, err := ctl("health", "klaxon.admin.v1.AlertService"); err != nil || out != "SERVING\n" {
		t.Fatalf("health of a service: %v\n%s", err, out)
	}
	if out, err := ctl("rules", "status"); err != nil || !strings.Contains(out, "default/klaxon.yml") {
		t.Fatalf("rules status: %v\n%s", err, out)
	}
	if out, err := ctl("rules", "reload"); err != nil || !strings.Contains(out, "version 2") {
		t.Fatalf("rules reload: %v\n%s", err, out)
	}
	if out, err := ctl("deliveries", "list"); err != nil || !strings.HasPrefix(out, "SEQ") {
		t.Fatalf("deliveries list: %v\n%s", err, out)
	}
	k.Stop()
	out, err := ctl("dlq", "list")
	if err == nil || !strings.Contains(out, "cannot reach klaxon at "+k.GRPC+": is `klaxon run` running?") {
		t.Fatalf("server down: %v\n%s", err, out)
	}
}

// TestKlaxonctlAuth: with --auth the admin API takes the tenant from
// --tenant and checks --token against rules/tenants.yml.
func TestKlaxonctlAuth(t *testing.T) {
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return "sha256:" + hex.EncodeToString(h[:]) }
	rules := harness.WriteRules(t, map[string]string{
		"team-a/klaxon.yml": routeAllTo("http://127.0.0.1:9"),
		"team-b/klaxon.yml": routeAllTo("http://127.0.0.1:9"),
		"tenants.yml": fmt.Sprintf("tenants:\n  team-a: {tokens: [%q]}\n  team-b: {tokens: [%q]}\nadmin_tokens: [%q]\n",
			sum("a-secret"), sum("b-secret"), sum("root")),
	})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Extra: []string{"--auth"}})
	ctl := func(args ...string) (string, error) {
		out, err := exec.Command(harness.Binary(t, "klaxonctl"), append([]string{"--addr", k.GRPC}, args...)...).CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct {
		args []string
		ok   bool
		want string
	}{
		{[]string{"rules", "status"}, false, "not authenticated: missing bearer token"},
		{[]string{"--token", "wrong", "rules", "status"}, false, "not authenticated: unknown bearer token"},
		{[]string{"--tenant", "team-b", "--token", "a-secret", "rules", "status"}, false, "permission denied"},
		{[]string{"--token", "a-secret", "rules", "status"}, true, "team-a/klaxon.yml"},
		{[]string{"--tenant", "team-b", "--token", "root", "rules", "status"}, true, "team-b/klaxon.yml"},
	} {
		out, err := ctl(tc.args...)
		if (err == nil) != tc.ok || !strings.Contains(out, tc.want) {
			t.Errorf("klaxonctl %v: err=%v, output:\n%s", tc.args, err, out)
		}
		if tc.ok && strings.Contains(tc.want, "team-a") && strings.Contains(out, "team-b") {
			t.Errorf("team-a's token shows team-b's rules:\n%s", out)
		}
	}
}

// TestKlaxonctlSilencesAndAlerts: against a running klaxon, `klaxonctl
// silence add` keeps a posted alert from notifying while another one does,
// `klaxonctl alerts list` shows both (the muted one with --silenced, naming
// the silence), and `klaxonctl silence expire` lets it notify.
func TestKlaxonctlSilencesAndAlerts(t *testing.T) {
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})
	silenceWithKlaxonctl(t, k.GRPC, k, sink)
}

// TestKlaxonctlSilencesOnAdminTarget: the same with the admin target in a
// process of its own: the engine sees the silence through KV.
func TestKlaxonctlSilencesOnAdminTarget(t *testing.T) {
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	front := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Target: "receiver,engine,notifier", NATSListen: true})
	adm := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Target: "admin",
		NATSURL: "nats://" + front.NATS, Extra: []string{"--nats.replicas", "1"}})
	silenceWithKlaxonctl(t, adm.GRPC, front, sink)
}

// listedAlert is the part of `klaxonctl alerts list -o json` a test reads.
type listedAlert struct {
	Fingerprint string            `json:"fingerprint"`
	Labels      map[string]string `json:"labels"`
	Status      string            `json:"status"`
	Receivers   []string          `json:"receivers"`
	SilencedBy  []string          `json:"silenced_by"`
}

func silenceWithKlaxonctl(t *testing.T, grpcAddr string, k *harness.Klaxon, sink *harness.Sink) {
	t.Helper()
	ctl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(harness.Binary(t, "klaxonctl"), append([]string{"--addr", grpcAddr}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("klaxonctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	id := strings.TrimSpace(ctl("silence", "add", "alertname=Quiet", "instance=~db-.*", "-d", "1h", "-a", "e2e", "-c", "disk swap"))
	if len(id) != 36 {
		t.Fatalf("silence add printed %q, want a silence id", id)
	}
	if out := ctl("silence", "list"); !strings.Contains(out, id) || !strings.Contains(out, `alertname="Quiet" instance=~"db-.*"`) ||
		!strings.Contains(out, "active") || !strings.Contains(out, "disk swap") {
		t.Fatalf("silence list:\n%s", out)
	}

	if code, body := k.Post("/api/v2/alerts", `[
		{"labels":{"alertname":"Quiet","instance":"db-1"},"annotations":{"summary":"muted"}},
		{"labels":{"alertname":"Loud","instance":"web-1"},"annotations":{"summary":"heard"}}]`); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	harness.Eventually(t, 20*time.Second, "the Loud notification", func() bool {
		return sink.AlertsByLabel("alertname", "firing")["Loud"] > 0
	})
	// Both groups flush on the same tick; give Quiet's two more group intervals.
	time.Sleep(2500 * time.Millisecond)
	if n := sink.AlertsByLabel("alertname", "firing")["Quiet"]; n != 0 {
		t.Fatalf("the silenced alert was notified %d times", n)
	}

	if out := ctl("alerts", "list"); !strings.Contains(out, `alertname="Loud"`) || strings.Contains(out, "Quiet") || !strings.Contains(out, "heard") {
		t.Fatalf("alerts list shows Loud, not the silenced Quiet:\n%s", out)
	}
	if out := ctl("alerts", "list", "--silenced", "alertname=Quiet"); !strings.Contains(out, `alertname="Quiet"`) || !strings.Contains(out, id) {
		t.Fatalf("alerts list --silenced shows Quiet silenced by %s:\n%s", id, out)
	}
	var resp struct {
		Alerts []listedAlert `json:"alerts"`
	}
	out := ctl("-o", "json", "alerts", "list", "--silenced")
	if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.Alerts) != 2 {
		t.Fatalf("alerts list -o json --silenced: %v\n%s", err, out)
	}
	for _, a := range resp.Alerts {
		quiet := a.Labels["alertname"] == "Quiet"
		if a.Status != "ALERT_STATUS_FIRING" || len(a.Fingerprint) != 16 || len(a.Receivers) != 1 || a.Receivers[0] != "sink" ||
			quiet != (len(a.SilencedBy) == 1 && a.SilencedBy[0] == id) {
			t.Errorf("listed alert: %+v", a)
		}
	}

	if out := ctl("silence", "expire", id); out != "expired "+id+"\n" {
		t.Fatalf("silence expire: %q", out)
	}
	if out := ctl("silence", "list"); strings.Contains(out, id) {
		t.Fatalf("expired silence listed without --expired:\n%s", out)
	}
	if out := ctl("silence", "list", "--expired"); !strings.Contains(out, id) || !strings.Contains(out, "expired") {
		t.Fatalf("silence list --expired:\n%s", out)
	}
	harness.Eventually(t, 20*time.Second, "the Quiet notification once its silence expired", func() bool {
		return sink.AlertsByLabel("alertname", "firing")["Quiet"] > 0
	})
}
