package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// routeAllTo is a tenant rule file that sends every alert to one webhook.
func routeAllTo(url string) string {
	return fmt.Sprintf(`
route:
  receiver: sink
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sink
    webhook_configs:
      - url: %s/hook
        send_resolved: true
`, url)
}

// TestIngestToWebhook is the Foundation issue's "done when", as written: an
// Alertmanager webhook and an API v2 array both reach the webhook target;
// malformed bodies get 400 and oversize ones 413.
func TestIngestToWebhook(t *testing.T) {
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})

	code, body := k.Post("/api/v1/alertmanager", `{"version":"4","status":"firing","receiver":"klaxon","groupKey":"{}:{}",
	  "alerts":[{"status":"firing","labels":{"alertname":"FromAlertmanager","severity":"warning"},"annotations":{"summary":"via webhook"},"startsAt":"2026-11-24T10:00:00Z"}]}`)
	if code != 200 {
		t.Fatalf("webhook: %d %s", code, body)
	}
	code, body = k.Post("/api/v2/alerts", `[{"labels":{"alertname":"FromAPIv2","instance":"a"}},{"labels":{"alertname":"FromAPIv2","instance":"b"}}]`)
	if code != 200 {
		t.Fatalf("v2: %d %s", code, body)
	}
	harness.Eventually(t, 10*time.Second, "both alerts at the webhook target", func() bool {
		got := sink.AlertsByLabel("alertname", "firing")
		return got["FromAlertmanager"] >= 1 && got["FromAPIv2"] >= 2
	})
	for _, m := range sink.Messages() {
		if m.Receiver != "sink" || m.Path != "/hook" || m.GroupKey == "" {
			t.Errorf("message %+v", m)
		}
	}

	if code, body := k.Post("/api/v2/alerts", `[{"labels":`); code != http.StatusBadRequest || !strings.Contains(body, "error") {
		t.Errorf("malformed: %d %s", code, body)
	}
	big := `[{"labels":{"alertname":"` + strings.Repeat("x", 5<<20) + `"}}]`
	if code, _ := k.Post("/api/v2/alerts", big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize: %d", code)
	}
}

// TestKillLosesNothing: alerts acknowledged while the webhook target is down
// are all delivered after the process is killed with SIGKILL and restarted
// on the same --data.
func TestKillLosesNothing(t *testing.T) {
	sink := harness.NewSink(t)
	sink.SetDown(true)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})

	const n = 40
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`[{"labels":{"alertname":"Crash","id":"%d"}}]`, i)
		if code, resp := k.Post("/api/v2/alerts", body); code != 200 {
			t.Fatalf("alert %d not acknowledged: %d %s", i, code, resp)
		}
	}
	// Let at least one delivery fail, so the kill hits messages mid-retry.
	harness.Eventually(t, 10*time.Second, "a failed delivery attempt", func() bool {
		return strings.Contains(k.Log(), "notify attempt failed")
	})
	k.Kill()
	sink.SetDown(false)
	k.Start()

	harness.Eventually(t, 60*time.Second, fmt.Sprintf("all %d acknowledged alerts delivered", n), func() bool {
		return len(sink.AlertsByLabel("id", "firing")) == n
	})
	for id, c := range sink.AlertsByLabel("id", "firing") {
		if c != 1 {
			t.Errorf("alert id=%s delivered %d times", id, c)
		}
	}
}
