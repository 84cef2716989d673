package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// TestTenantLimits: the limits of rules/tenants.yml. ingest_per_second: 429
// with Retry-After at the receiver. max_active_alerts: team-a's third distinct alert is refused by the
// engine (never notified, counted in klaxon_engine_alerts_rejected_total)
// while team-b's alerts still notify. max_silences: one count over the
// Alertmanager API and the gRPC admin API; over it POST /api/v2/silences
// answers 400 (as Alertmanager and Mimir do) and CreateSilence
// ResourceExhausted; expiring a silence makes room.
func TestTenantLimits(t *testing.T) {
	sinkA, sinkB, sinkC := harness.NewSink(t), harness.NewSink(t), harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{
		"team-a/klaxon.yml": routeAllTo(sinkA.URL()),
		"team-b/klaxon.yml": routeAllTo(sinkB.URL()),
		"team-c/klaxon.yml": routeAllTo(sinkC.URL()),
		"tenants.yml": fmt.Sprintf(`tenants:
  team-a: {tokens: [%q], limits: {max_active_alerts: 2, max_silences: 2}}
  team-b: {tokens: [%q], limits: {max_active_alerts: 3}}
  team-c: {tokens: [%q], limits: {ingest_per_second: 1}}
admin_tokens: [%q]
`, tokenHash("token-a"), tokenHash("token-b"), tokenHash("token-c"), tokenHash("token-root")),
	})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Extra: []string{"--auth"}})
	post := func(token, body string) {
		t.Helper()
		if code, resp := k.Post("/api/v2/alerts", body, "Authorization", "Bearer "+token); code != http.StatusOK {
			t.Fatalf("post as %s: %d %s", token, code, resp)
		}
	}
	rejected := func(tenant string) float64 {
		return metricValue(t, k.URL(), fmt.Sprintf(`klaxon_engine_alerts_rejected_total{tenant=%q}`, tenant))
	}

	// max_active_alerts: 2 for team-a.
	post("token-a", `[{"labels":{"alertname":"A1"}},{"labels":{"alertname":"A2"}}]`)
	harness.Eventually(t, 20*time.Second, "team-a's first two alerts notified", func() bool {
		got := sinkA.AlertsByLabel("alertname", "firing")
		return got["A1"] > 0 && got["A2"] > 0
	})
	post("token-a", `[{"labels":{"alertname":"A3"}}]`)
	harness.Eventually(t, 20*time.Second, "team-a's third alert counted as rejected", func() bool {
		return rejected("team-a") == 1
	})
	// An alert already held keeps updating: not a new one.
	post("token-a", `[{"labels":{"alertname":"A1"},"annotations":{"summary":"again"}}]`)
	// team-b has its own count: its three alerts all notify.
	post("token-b", `[{"labels":{"alertname":"B1"}},{"labels":{"alertname":"B2"}},{"labels":{"alertname":"B3"}}]`)
	harness.Eventually(t, 20*time.Second, "team-b's three alerts notified", func() bool {
		got := sinkB.AlertsByLabel("alertname", "firing")
		return got["B1"] > 0 && got["B2"] > 0 && got["B3"] > 0
	})
	// A3 was counted as rejected above, so the engine has dealt with it:
	// refused, it is in no group and cannot have been notified.
	if n := sinkA.AlertsByLabel("alertname", "firing")["A3"]; n != 0 {
		t.Errorf("team-a's alert over max_active_alerts was notified %d times", n)
	}
	if a, b := rejected("team-a"), rejected("team-b"); a != 1 || b != 0 {
		t.Errorf("klaxon_engine_alerts_rejected_total: team-a %v, team-b %v; want 1 and 0", a, b)
	}
	if code, body := authed(t, "GET", k.URL()+"/api/v2/alerts", "", "token-a", ""); code != http.StatusOK || strings.Contains(body, `"A3"`) || !strings.Contains(body, `"A2"`) {
		t.Errorf("team-a's GET /api/v2/alerts: %d %s; want A1 and A2 and not A3", code, body)
	}

	// ingest_per_second: 1 for team-c: a burst of posts gets 429 with
	// Retry-After; the other tenants' ingest is not limited by it.
	limited := false
	for i := 0; i < 5 && !limited; i++ {
		req, _ := http.NewRequest("POST", k.URL()+"/api/v2/alerts", strings.NewReader(`[{"labels":{"alertname":"C"}}]`))
		req.Header.Set("Authorization", "Bearer token-c")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusTooManyRequests:
			limited = true
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		case http.StatusOK:
		default:
			t.Fatalf("team-c's post: %d", resp.StatusCode)
		}
	}
	if !limited {
		t.Error("team-c's five posts within a second were all admitted at ingest_per_second 1")
	}
	post("token-b", `[{"labels":{"alertname":"B1"}}]`)

	// max_silences: 2 for team-a, one over HTTP and one over gRPC.
	postSilence := func(token, tenant, name string) (int, string) {
		t.Helper()
		return authed(t, "POST", k.URL()+"/api/v2/silences", silenceJSON("", name), token, tenant)
	}
	code, body := postSilence("token-a", "", "S1")
	var first struct {
		SilenceID string `json:"silenceID"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &first) != nil {
		t.Fatalf("team-a's first silence: %d %s", code, body)
	}
	silences := adminv1.NewSilenceServiceClient(adminConn(t, k.GRPC))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	asA := withTenant(ctx, "token-a", "")
	newSilence := func(name string) *adminv1.CreateSilenceRequest {
		return &adminv1.CreateSilenceRequest{Silence: &adminv1.Silence{
			Matchers: []*adminv1.Matcher{{Name: "alertname", Value: name, Type: adminv1.MatcherType_MATCHER_TYPE_EQUAL}},
			EndsAt:   timestamppb.New(time.Now().Add(time.Hour)), CreatedBy: "e2e", Comment: "limits",
		}}
	}
	if _, err := silences.CreateSilence(asA, newSilence("S2")); err != nil {
		t.Fatalf("team-a's second silence over gRPC: %v", err)
	}
	code, body = postSilence("token-a", "", "S3")
	if code != http.StatusBadRequest || !strings.Contains(body, "exceeded maximum number of silences: 2 (limit: 2)") {
		t.Errorf("team-a's third silence over HTTP: %d %s; want 400 as Alertmanager answers", code, body)
	}
	if code, body := postSilence("token-root", "team-a", "S3"); code != http.StatusBadRequest {
		t.Errorf("an admin's silence for team-a over its limit: %d %s; want 400", code, body)
	}
	if _, err := silences.CreateSilence(asA, newSilence("S3")); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("team-a's third silence over gRPC: %v; want ResourceExhausted", err)
	}
	if code, body := postSilence("token-b", "", "B"); code != http.StatusOK {
		t.Errorf("team-b's silence (no limit): %d %s", code, body)
	}
	// Updating a live silence at the limit is not a new one.
	req, _ := http.NewRequest("POST", k.URL()+"/api/v2/silences", strings.NewReader(silenceJSON(first.SilenceID, "S1-changed")))
	req.Header.Set("Authorization", "Bearer token-a")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("updating a silence at the limit: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	list, err := silences.ListSilences(asA, &adminv1.ListSilencesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetSilences()) != 2 {
		t.Fatalf("team-a's live silences: %v; want 2", list.GetSilences())
	}
	if code, body := authed(t, "DELETE", k.URL()+"/api/v2/silence/"+list.GetSilences()[0].GetId(), "", "token-a", ""); code != http.StatusOK {
		t.Fatalf("expire: %d %s", code, body)
	}
	if code, body := postSilence("token-a", "", "S3"); code != http.StatusOK {
		t.Errorf("a silence after one expired: %d %s", code, body)
	}
	if _, err := silences.CreateSilence(asA, newSilence("S4")); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("over the limit again over gRPC: %v; want ResourceExhausted", err)
	}
}
