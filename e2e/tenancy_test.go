package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

func tokenHash(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestTenantIsolation runs Klaxon with --auth and two tenants, each with its
// own rules and webhook: every HTTP endpoint rejects a missing token (401)
// and another tenant's token (403), and one tenant's alerts, policies,
// heartbeats and SLOs never reach or show up for the other.
func TestTenantIsolation(t *testing.T) {
	sinkA, sinkB := harness.NewSink(t), harness.NewSink(t)
	withExtras := func(url string) string {
		return routeAllTo(url) + `
policies:
  - name: restarts
    match: ['alertname="KubePodRestart"']
    key: [pod]
    threshold: 0
    window: 1h
    labels: {alertname: Restarted}
heartbeats:
  - name: cron
    interval: 1h
slos:
  - name: api
    objective: 99.9
    period: 30d
    events: {}
`
	}
	rules := harness.WriteRules(t, map[string]string{
		"team-a/klaxon.yml": withExtras(sinkA.URL()),
		"team-b/klaxon.yml": withExtras(sinkB.URL()),
		"tenants.yml": fmt.Sprintf(`tenants:
  team-a: {tokens: [%q], limits: {ingest_per_second: 1000}}
  team-b: {tokens: [%q], limits: {ingest_per_second: 1000}}
admin_tokens: [%q]
`, tokenHash("token-a"), tokenHash("token-b"), tokenHash("token-root")),
	})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Extra: []string{"--auth"}})

	type ep struct{ method, path, body string }
	endpoints := []ep{
		{"POST", "/api/v1/alertmanager", `{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"X"}}]}`},
		{"POST", "/api/v2/alerts", `[{"labels":{"alertname":"X"}}]`},
		{"POST", "/api/v1/eventbridge", `{"id":"e1","detail-type":"x","source":"aws.ec2"}`},
		{"POST", "/api/v1/k8s-events", `{"metadata":{"uid":"u"},"involvedObject":{"kind":"Pod","name":"p"},"reason":"BackOff"}`},
		{"POST", "/api/v1/heartbeat/cron", ``},
		{"POST", "/api/v1/slo/api/events", `{"good":1,"total":1}`},
		{"POST", "/api/v1/sns", `{}`},
		{"GET", "/api/v1/slo", ``},
		{"GET", "/api/v1/slo/api", ``},
		{"GET", "/api/v1/policies", ``},
		{"GET", "/api/v1/policies/restarts", ``},
		{"GET", "/api/v1/heartbeats", ``},
		{"GET", "/api/v1/heartbeats/cron", ``},
	}
	do := func(e ep, token, tenant string) int {
		req, _ := http.NewRequest(e.method, k.URL()+e.path, strings.NewReader(e.body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if tenant != "" {
			req.Header.Set("X-Scope-OrgID", tenant)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, e := range endpoints {
		if code := do(e, "", "team-a"); code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d, want 401", e.method, e.path, code)
		}
		if code := do(e, "nope", "team-a"); code != http.StatusUnauthorized {
			t.Errorf("%s %s with an unknown token: %d, want 401", e.method, e.path, code)
		}
		if code := do(e, "token-b", "team-a"); code != http.StatusForbidden {
			t.Errorf("%s %s with team-b's token for team-a: %d, want 403", e.method, e.path, code)
		}
	}

	// Data stays with its tenant.
	if code, body := k.Post("/api/v2/alerts", `[{"labels":{"alertname":"KubePodRestart","pod":"a-1"}}]`, "Authorization", "Bearer token-a"); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if code, body := k.Post("/api/v1/slo/api/events", `{"good":0,"total":7}`, "Authorization", "Bearer token-a"); code != 202 {
		t.Fatalf("%d %s", code, body)
	}
	harness.Eventually(t, 15*time.Second, "team-a's alert and derived alert at team-a's sink", func() bool {
		got := sinkA.AlertsByLabel("alertname", "firing")
		return got["KubePodRestart"] == 1 && got["Restarted"] == 1
	})
	// An admin token may act for any tenant it names.
	if code, body := k.Post("/api/v2/alerts", `[{"labels":{"alertname":"FromAdmin"}}]`, "Authorization", "Bearer token-root", "X-Scope-OrgID", "team-b"); code != 200 {
		t.Fatalf("admin token: %d %s", code, body)
	}
	harness.Eventually(t, 15*time.Second, "the admin's alert at team-b's sink", func() bool {
		return sinkB.AlertsByLabel("alertname", "firing")["FromAdmin"] == 1
	})
	for name := range sinkB.AlertsByLabel("alertname", "") {
		if name != "FromAdmin" {
			t.Errorf("team-b's sink received %q from team-a", name)
		}
	}
	get := func(path, token string) string {
		req, _ := http.NewRequest("GET", k.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, readAll(resp))
		return b.String()
	}
	if body := get("/api/v1/policies/restarts", "token-b"); strings.Contains(body, "a-1") {
		t.Errorf("team-b sees team-a's policy keys: %s", body)
	}
	if body := get("/api/v1/policies/restarts", "token-a"); !strings.Contains(body, "a-1") {
		t.Errorf("team-a does not see its own policy keys: %s", body)
	}
	if body := get("/api/v1/slo/api", "token-b"); !strings.Contains(body, `"consumed": 0`) || strings.Contains(body, `"consumed": 7`) {
		t.Errorf("team-b's SLO shows team-a's counts: %s", body)
	}
}
