package amapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/engine"
	"github.com/klaxon-sh/klaxon/services/engine/silence"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// authAPI serves the API with two tenants (tokens a and b), an admin token
// and max_silences 2 for team-a, over an in-memory silence store.
func authAPI(t *testing.T) *httptest.Server {
	t.Helper()
	tenants := &ruleset.Tenants{
		Tenants: map[string]ruleset.TenantAuth{
			"team-a": {Tokens: []string{ruleset.HashToken("a")}, Limits: ruleset.Limits{MaxSilences: 2}},
			"team-b": {Tokens: []string{ruleset.HashToken("b")}},
		},
		AdminTokens: []string{ruleset.HashToken("root")},
	}
	api := New(Config{
		Silences:    silence.New(silence.NewMemBackend()),
		Rules:       ruleset.NewStaticHolder(&ruleset.Set{Tenants: map[string]*ruleset.Tenant{}}),
		Groups:      func(context.Context, string) ([]*engine.GroupState, error) { return nil, nil },
		Auth:        tenants,
		MaxSilences: func(t string) int { return tenants.Tenants[t].Limits.MaxSilences },
	}, bustest.Logger(t))
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, method, path, body, token, tenant string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
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
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func silenceBody(name string) string {
	return `{"matchers":[{"name":"alertname","value":"` + name + `","isRegex":false}],"endsAt":"` +
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","createdBy":"t","comment":"c"}`
}

func TestAuthStatuses(t *testing.T) {
	srv := authAPI(t)
	for _, path := range []string{"/api/v2/status", "/api/v2/receivers", "/api/v2/alerts", "/api/v2/alerts/groups", "/api/v2/silences", "/api/v2/silence/x"} {
		for _, tc := range []struct {
			token, tenant string
			want          int
		}{
			{"", "team-a", http.StatusUnauthorized},
			{"nope", "team-a", http.StatusUnauthorized},
			{"b", "team-a", http.StatusForbidden},
			{"root", "", http.StatusBadRequest},
			{"a", "", http.StatusOK},
			{"root", "team-a", http.StatusOK},
		} {
			want := tc.want
			if want == http.StatusOK && strings.HasPrefix(path, "/api/v2/silence/") {
				want = http.StatusNotFound
			}
			if code, body := call(t, srv, "GET", path, "", tc.token, tc.tenant); code != want {
				t.Errorf("GET %s token %q tenant %q: %d %s, want %d", path, tc.token, tc.tenant, code, body, want)
			}
		}
	}
}

func TestMaxSilences(t *testing.T) {
	srv := authAPI(t)
	var ids []string
	for i, name := range []string{"One", "Two"} {
		code, body := call(t, srv, "POST", "/api/v2/silences", silenceBody(name), "a", "")
		var r struct {
			SilenceID string `json:"silenceID"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &r) != nil || r.SilenceID == "" {
			t.Fatalf("silence %d: %d %s", i, code, body)
		}
		ids = append(ids, r.SilenceID)
	}
	// A third is over team-a's max_silences: 400, as Alertmanager answers.
	code, body := call(t, srv, "POST", "/api/v2/silences", silenceBody("Three"), "a", "")
	if code != http.StatusBadRequest || !strings.Contains(body, "exceeded maximum number of silences: 2 (limit: 2)") {
		t.Fatalf("third silence: %d %s, want 400 naming the limit", code, body)
	}
	// Updating one of the two is not a new silence.
	upd := strings.Replace(silenceBody("Changed"), "{", `{"id":"`+ids[0]+`",`, 1)
	if code, body := call(t, srv, "POST", "/api/v2/silences", upd, "a", ""); code != http.StatusOK {
		t.Fatalf("update at the limit: %d %s", code, body)
	}
	// Another tenant has its own count, and an admin acting for team-a is held to team-a's.
	if code, body := call(t, srv, "POST", "/api/v2/silences", silenceBody("B"), "b", ""); code != http.StatusOK {
		t.Fatalf("team-b's silence: %d %s", code, body)
	}
	if code, body := call(t, srv, "POST", "/api/v2/silences", silenceBody("Root"), "root", "team-a"); code != http.StatusBadRequest {
		t.Fatalf("admin over team-a's limit: %d %s", code, body)
	}
	// Expiring one makes room.
	_, list := call(t, srv, "GET", "/api/v2/silences", "", "a", "")
	var sils []struct {
		ID     string `json:"id"`
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(list), &sils); err != nil {
		t.Fatal(err)
	}
	live := ""
	for _, s := range sils {
		if s.Status.State == "active" {
			live = s.ID
		}
	}
	if code, body := call(t, srv, "DELETE", "/api/v2/silence/"+live, "", "a", ""); code != http.StatusOK {
		t.Fatalf("expire: %d %s", code, body)
	}
	// Expiring it again is 200, as in Alertmanager since 0.26 (Grafana's
	// Expire on a silence that just ended); it was a 500.
	if code, body := call(t, srv, "DELETE", "/api/v2/silence/"+live, "", "a", ""); code != http.StatusOK {
		t.Fatalf("expire an expired silence: %d %s, want 200", code, body)
	}
	if code, body := call(t, srv, "POST", "/api/v2/silences", silenceBody("Three"), "a", ""); code != http.StatusOK {
		t.Fatalf("after an expiry: %d %s", code, body)
	}
}

// amtool --alertmanager.url=http://tenant:token@host authenticates with the
// URL's user info (basic auth), as senders do on the ingest endpoints; it
// was 401 "missing bearer token".
func TestBasicAuthAsTenantAndToken(t *testing.T) {
	srv := authAPI(t)
	for _, tc := range []struct {
		user, pass string
		want       int
	}{
		{"team-a", "a", http.StatusOK},
		{"team-b", "a", http.StatusForbidden},
		{"team-a", "nope", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v2/silences", nil)
		req.SetBasicAuth(tc.user, tc.pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("basic auth %s:%s: %d, want %d", tc.user, tc.pass, resp.StatusCode, tc.want)
		}
	}
}
