package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
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
// own rules and webhook: every HTTP endpoint (ingest, the read endpoints,
// the Alertmanager API v2 and POST /-/reload) rejects a missing or unknown
// token (401) and another tenant's token (403), /-/reload takes admin
// tokens only, and one tenant's alerts, policies, heartbeats, SLOs and
// silences never reach or show up for the other.
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
		// The Alertmanager API v2 (services/amapi) and the reload.
		{"GET", "/api/v2/status", ``},
		{"GET", "/api/v2/receivers", ``},
		{"GET", "/api/v2/alerts", ``},
		{"GET", "/api/v2/alerts/groups", ``},
		{"GET", "/api/v2/silences", ``},
		{"POST", "/api/v2/silences", silenceJSON("", "X")},
		{"GET", "/api/v2/silence/" + noSuchSilence, ``},
		{"DELETE", "/api/v2/silence/" + noSuchSilence, ``},
		{"POST", "/-/reload", ``},
	}
	call := func(method, path, body, token, tenant string) (int, string) {
		t.Helper()
		return authed(t, method, k.URL()+path, body, token, tenant)
	}
	do := func(e ep, token, tenant string) int {
		code, _ := call(e.method, e.path, e.body, token, tenant)
		return code
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

	// POST /-/reload acts for every tenant (and answers with every tenant's
	// rule errors): with --auth only an admin token may call it.
	if code := do(ep{"POST", "/-/reload", ""}, "token-a", ""); code != http.StatusForbidden {
		t.Errorf("POST /-/reload with team-a's own token: %d, want 403", code)
	}
	if code, body := call("POST", "/-/reload", "", "token-root", ""); code != http.StatusOK {
		t.Errorf("POST /-/reload with an admin token: %d %s, want 200", code, body)
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
		_, body := authed(t, "GET", k.URL()+path, "", token, "")
		return body
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
	amtoolAPIIsolation(t, call)
}

// noSuchSilence is a well-formed silence id nobody created.
const noSuchSilence = "00000000-0000-4000-8000-000000000000"

// silenceJSON is a postable silence of alertname=name for an hour (id
// empty: a new one).
func silenceJSON(id, name string) string {
	idField := ""
	if id != "" {
		idField = fmt.Sprintf(`"id":%q,`, id)
	}
	return fmt.Sprintf(`{%s"matchers":[{"name":"alertname","value":%q,"isRegex":false}],"startsAt":%q,"endsAt":%q,"createdBy":"e2e","comment":"tenancy"}`,
		idField, name, time.Now().UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
}

type amCall func(method, path, body, token, tenant string) (int, string)

// amtoolAPIIsolation: through the Alertmanager API v2 (what amtool uses),
// team-a's silence and alerts are invisible to team-b, and team-b can
// neither expire nor overwrite the silence; an admin token naming team-a
// sees them, naming team-b does not.
func amtoolAPIIsolation(t *testing.T, call amCall) {
	t.Helper()
	code, body := call("POST", "/api/v2/silences", silenceJSON("", "NeverFires"), "token-a", "")
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &created) != nil || created.SilenceID == "" {
		t.Fatalf("team-a's POST /api/v2/silences: %d %s", code, body)
	}
	id := created.SilenceID
	has := func(token, tenant, path, want string) bool {
		t.Helper()
		code, body := call("GET", path, "", token, tenant)
		if code != http.StatusOK {
			t.Fatalf("GET %s as %s/%q: %d %s", path, token, tenant, code, body)
		}
		return strings.Contains(body, want)
	}
	if !has("token-a", "", "/api/v2/silences", id) {
		t.Fatalf("team-a does not list its own silence %s", id)
	}
	if has("token-b", "", "/api/v2/silences", id) {
		t.Errorf("team-b lists team-a's silence %s", id)
	}
	if code, body := call("GET", "/api/v2/silence/"+id, "", "token-b", ""); code != http.StatusNotFound {
		t.Errorf("team-b GET /api/v2/silence/<team-a's>: %d %s, want 404", code, body)
	}
	if code, body := call("DELETE", "/api/v2/silence/"+id, "", "token-b", ""); code != http.StatusNotFound {
		t.Errorf("team-b DELETE /api/v2/silence/<team-a's>: %d %s, want 404", code, body)
	}
	if code, body := call("POST", "/api/v2/silences", silenceJSON(id, "Hijacked"), "token-b", ""); code != http.StatusNotFound {
		t.Errorf("team-b POST /api/v2/silences with team-a's id: %d %s, want 404", code, body)
	}
	code, body = call("GET", "/api/v2/silence/"+id, "", "token-a", "")
	if code != http.StatusOK || !strings.Contains(body, `"state":"active"`) || !strings.Contains(body, "NeverFires") {
		t.Errorf("team-a's silence after team-b's attempts: %d %s, want it active and unchanged", code, body)
	}
	if !has("token-root", "team-a", "/api/v2/silences", id) || has("token-root", "team-b", "/api/v2/silences", id) {
		t.Errorf("an admin token sees team-a's silence only when it names team-a")
	}

	// team-a's alert (posted above) is in team-a's views only.
	harness.Eventually(t, 15*time.Second, "team-a's alert in its GET /api/v2/alerts and /alerts/groups", func() bool {
		return has("token-a", "", "/api/v2/alerts", `"pod":"a-1"`) && has("token-a", "", "/api/v2/alerts/groups", `"pod":"a-1"`)
	})
	for _, path := range []string{"/api/v2/alerts", "/api/v2/alerts/groups"} {
		if has("token-b", "", path, "KubePodRestart") || has("token-root", "team-b", path, "KubePodRestart") {
			t.Errorf("team-b's GET %s shows team-a's alert", path)
		}
		if !has("token-root", "team-a", path, `"pod":"a-1"`) {
			t.Errorf("an admin token naming team-a does not see team-a's alert in GET %s", path)
		}
	}
	if !has("token-b", "", "/api/v2/alerts", "FromAdmin") {
		t.Errorf("team-b does not see its own alert in GET /api/v2/alerts")
	}
}

// A reload reads tenants.yml again: a rotated token is accepted and the old
// one refused without a restart; a tenants.yml that does not load fails the
// reload (500) and the last good tokens stay. It was read once at start, and
// a reload that reported success left the old tokens in force.
func TestReloadRotatesTenantTokens(t *testing.T) {
	sink := harness.NewSink(t)
	tenants := func(tok string) string {
		return fmt.Sprintf("tenants:\n  team-a: {tokens: [%q]}\nadmin_tokens: [%q]\n", tokenHash(tok), tokenHash("token-root"))
	}
	rules := harness.WriteRules(t, map[string]string{"team-a/klaxon.yml": routeAllTo(sink.URL()), "tenants.yml": tenants("old")})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Extra: []string{"--auth"}})
	post := func(tok string) int {
		code, _ := k.Post("/api/v2/alerts", `[{"labels":{"alertname":"Rotate"}}]`, "Authorization", "Bearer "+tok)
		return code
	}
	if code := post("old"); code != 200 {
		t.Fatalf("old token before the rotation: %d", code)
	}
	write := func(body string) {
		t.Helper()
		// Write-then-rename, as a config manager does.
		tmp := filepath.Join(rules, ".tenants.tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(rules, "tenants.yml")); err != nil {
			t.Fatal(err)
		}
	}
	write(tenants("new"))
	if code, body := k.Post("/-/reload", "", "Authorization", "Bearer token-root"); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if code := post("new"); code != 200 {
		t.Fatalf("new token after the reload: %d, want 200", code)
	}
	if code := post("old"); code != 401 {
		t.Fatalf("old token after the reload: %d, want 401", code)
	}
	write("tenants: [not a map\n")
	if code, _ := k.Post("/-/reload", "", "Authorization", "Bearer token-root"); code != 500 {
		t.Fatalf("reload with a broken tenants.yml: %d, want 500", code)
	}
	if code := post("new"); code != 200 {
		t.Fatalf("the last good token after a failed reload: %d, want 200", code)
	}
}
