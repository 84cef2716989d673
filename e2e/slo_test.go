package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// TestExampleSLOsPageAndTicket: the example SLOs of rules/default page and
// ticket end to end when alerts and counts are posted, and `klaxonctl slo
// report` prints the week, month and year budgets.
func TestExampleSLOsPageAndTicket(t *testing.T) {
	sink := harness.NewSink(t)
	rules := exampleRulesTo(t, sink.URL())
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Extra: []string{"--slo.evaluation-interval", "200ms"}})

	// Time slice: checkout is down.
	if code, body := k.Post("/api/v2/alerts", `[{"labels":{"alertname":"CheckoutDown","severity":"critical"}}]`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	// Ratio: the gateway reports 200 requests, 40 failed (20% errors).
	if code, body := k.Post("/api/v1/slo/api-availability/events", `{"good":160,"total":200}`); code != 202 {
		t.Fatalf("%d %s", code, body)
	}
	burn := func(sloName, severity string) bool {
		for _, m := range sink.Messages() {
			for _, a := range m.Alerts {
				if a.Status == "firing" && a.Labels["alertname"] == "SLOBurnRate" && a.Labels["slo"] == sloName && a.Labels["severity"] == severity {
					return true
				}
			}
		}
		return false
	}
	harness.Eventually(t, 20*time.Second, "SLOBurnRate page for checkout-availability", func() bool { return burn("checkout-availability", "page") })
	harness.Eventually(t, 20*time.Second, "SLOBurnRate page and ticket for api-availability", func() bool {
		return burn("api-availability", "page") && burn("api-availability", "ticket")
	})
	for _, m := range sink.Messages() {
		for _, a := range m.Alerts {
			if a.Labels["alertname"] == "SLOBurnRate" && (a.Labels["long_window"] == "" || a.Labels["short_window"] == "" || a.Annotations["summary"] == "") {
				t.Errorf("burn alert without windows or summary: %+v", a)
			}
		}
	}

	ctl := harness.Binary(t, "klaxonctl")
	for period, label := range map[string]string{"week": "weekly", "month": "monthly", "year": "annually"} {
		out, err := exec.Command(ctl, "--addr", k.GRPC, "slo", "report", "--period", period).CombinedOutput()
		if err != nil {
			t.Fatalf("klaxonctl slo report --period %s: %v\n%s", period, err, out)
		}
		s := string(out)
		if !strings.Contains(s, "checkout-availability") || !strings.Contains(s, "api-availability") || !strings.Contains(s, label) {
			t.Fatalf("report for %s:\n%s", period, s)
		}
	}
	code, body := getBody(t, k.URL()+"/api/v1/slo/api-availability")
	if code != 200 || !strings.Contains(body, `"consumed": 40`) {
		t.Fatalf("GET /api/v1/slo/api-availability: %d %s", code, body)
	}
}
