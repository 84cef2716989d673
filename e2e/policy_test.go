package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// exampleRulesTo copies the repository's example rules (rules/default/*.yml),
// pointing their webhooks at the sink.
func exampleRulesTo(t *testing.T, sinkURL string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "rules", "default", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("example rules: %v", err)
	}
	out := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.yml") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out["default/"+filepath.Base(f)] = strings.ReplaceAll(string(src), "http://127.0.0.1:9099", sinkURL)
	}
	return harness.WriteRules(t, out)
}

func restartAlert(pod string, startsAt time.Time) string {
	return fmt.Sprintf(`[{"labels":{"alertname":"KubePodRestart","namespace":"shop","pod":%q},"startsAt":%q}]`,
		pod, startsAt.UTC().Format(time.RFC3339))
}

// TestRestartPoliciesEndToEnd: restart alerts posted to /api/v2/alerts reach
// the webhook receiver as FrequentRestarts and RecurringRestarts derived
// alerts (the example rules of rules/default), and a Klaxon killed in the
// middle of the window keeps counting where it stopped.
func TestRestartPoliciesEndToEnd(t *testing.T) {
	sink := harness.NewSink(t)
	rules := exampleRulesTo(t, sink.URL())
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})
	now := time.Now().UTC().Truncate(time.Second)

	for i := 0; i < 3; i++ {
		// Each alert is posted twice, as Prometheus re-sends firing alerts.
		for j := 0; j < 2; j++ {
			if code, body := k.Post("/api/v2/alerts", restartAlert("web-1", now.Add(time.Duration(i-5)*time.Minute))); code != 200 {
				t.Fatalf("%d %s", code, body)
			}
		}
	}
	// Three restarts are not more than three: wait until the policy has
	// counted them (each once, though each was posted twice), then make sure
	// nothing fired. (The three alerts share one label set, so the engine
	// merges them into one alert of one group, as Alertmanager does.)
	harness.Eventually(t, 15*time.Second, "the 3 restarts counted by restarts-short", func() bool {
		_, body := getBody(t, k.URL()+"/api/v1/policies/restarts-short")
		return strings.Contains(body, `"occurrences_total": 3`)
	})
	harness.Eventually(t, 15*time.Second, "the restart alert routed", func() bool {
		return sink.AlertsByLabel("alertname", "firing")["KubePodRestart"] >= 1
	})
	if n := sink.AlertsByLabel("alertname", "firing")["FrequentRestarts"]; n != 0 {
		t.Fatalf("fired after 3 restarts")
	}
	if _, body := getBody(t, k.URL()+"/api/v1/policies/restarts-short"); !strings.Contains(body, `"occurrences_total": 3`) {
		t.Fatalf("a re-sent alert counted again: %s", body)
	}

	k.Kill()
	k.Start()

	if code, body := k.Post("/api/v2/alerts", restartAlert("web-1", now.Add(-time.Minute))); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	harness.Eventually(t, 20*time.Second, "FrequentRestarts and RecurringRestarts at the webhook", func() bool {
		got := sink.AlertsByLabel("alertname", "firing")
		return got["FrequentRestarts"] >= 1 && got["RecurringRestarts"] >= 1
	})
	// The derived alert's generatorURL: the policy and its keys.
	code, body := getBody(t, k.URL()+"/api/v1/policies/restarts-short")
	if code != 200 || !strings.Contains(body, `"pod": "web-1"`) || !strings.Contains(body, `"firing": true`) {
		t.Errorf("GET /api/v1/policies/restarts-short: %d %s", code, body)
	}
	for _, m := range sink.Messages() {
		for _, a := range m.Alerts {
			if a.Labels["alertname"] == "FrequentRestarts" {
				if a.Labels["priority"] != "P1" || a.Labels["pod"] != "web-1" || !strings.Contains(a.Annotations["summary"], "shop/web-1") {
					t.Errorf("derived alert %+v", a)
				}
			}
		}
	}
}

// TestSilentHeartbeatPages: a heartbeat that stops pages, and resolves when
// it returns.
func TestSilentHeartbeatPages(t *testing.T) {
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL()) + `
heartbeats:
  - name: backup
    interval: 1s
    grace: 1s
    labels: {severity: critical}
`})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})
	if code, _ := k.Post("/api/v1/heartbeat/backup", ""); code != 200 {
		t.Fatal(code)
	}
	harness.Eventually(t, 15*time.Second, "DeadMansSwitch page", func() bool {
		return sink.AlertsByLabel("heartbeat", "firing")["backup"] >= 1
	})
	if code, body := getBody(t, k.URL()+"/api/v1/heartbeats/backup"); code != 200 || !strings.Contains(body, `"firing": true`) {
		t.Errorf("GET /api/v1/heartbeats/backup: %d %s", code, body)
	}
	if code, _ := k.Post("/api/v1/heartbeat/backup", ""); code != 200 {
		t.Fatal(code)
	}
	harness.Eventually(t, 15*time.Second, "DeadMansSwitch resolved", func() bool {
		return sink.AlertsByLabel("heartbeat", "resolved")["backup"] >= 1
	})
}

// TestBackOffEventsPageEndToEnd: Kubernetes BackOff events posted to
// /api/v1/k8s-events (as the event exporter sends them: one Event object
// updated in place, its count growing) are counted by the example rules'
// backoff-short policy and page as FrequentRestarts for the pod; a re-sent
// event (the same count) is not counted again.
func TestBackOffEventsPageEndToEnd(t *testing.T) {
	sink := harness.NewSink(t)
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: exampleRulesTo(t, sink.URL())})
	now := time.Now().UTC().Truncate(time.Second)
	event := func(count int) string {
		return fmt.Sprintf(`{"kind":"Event","metadata":{"name":"web-1.17","namespace":"shop","uid":"uid-1"},
		  "involvedObject":{"kind":"Pod","namespace":"shop","name":"web-1","fieldPath":"spec.containers{app}"},
		  "reason":"BackOff","message":"Back-off restarting failed container","type":"Warning","count":%d,
		  "lastTimestamp":%q,"source":{"component":"kubelet","host":"node-1"}}`, count, now.Add(time.Duration(count-5)*time.Minute).Format(time.RFC3339))
	}
	for _, count := range []int{1, 2, 3, 3} {
		if code, body := k.Post("/api/v1/k8s-events", event(count)); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	harness.Eventually(t, 15*time.Second, "the 3 BackOff events counted by backoff-short", func() bool {
		_, body := getBody(t, k.URL()+"/api/v1/policies/backoff-short")
		return strings.Contains(body, `"occurrences_total": 3`)
	})
	if n := sink.AlertsByLabel("alertname", "firing")["FrequentRestarts"]; n != 0 {
		t.Fatalf("fired after 3 BackOff events (one of them re-sent)")
	}
	if code, body := k.Post("/api/v1/k8s-events", event(4)); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	harness.Eventually(t, 20*time.Second, "FrequentRestarts for shop/web-1 at the webhook", func() bool {
		for _, m := range sink.Messages() {
			for _, a := range m.Alerts {
				if a.Labels["alertname"] == "FrequentRestarts" && a.Status == "firing" && a.Labels["namespace"] == "shop" && a.Labels["pod"] == "web-1" {
					return true
				}
			}
		}
		return false
	})
}
