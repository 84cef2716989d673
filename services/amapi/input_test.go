package amapi

import (
	"net/http"
	"strings"
	"testing"
)

// A posted silence over the limit is 413, not 400: amtool and Grafana show
// the status, and a 400 says the silence itself is malformed.
func TestOversizeSilenceIs413(t *testing.T) {
	srv := authAPI(t)
	big := strings.Replace(silenceBody("Big"), `"comment":"c"`, `"comment":"`+strings.Repeat("x", maxSilenceBytes)+`"`, 1)
	if code, body := call(t, srv, "POST", "/api/v2/silences", big, "a", ""); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "larger than") {
		t.Fatalf("oversize silence: %d %s, want 413", code, body)
	}
	if code, body := call(t, srv, "POST", "/api/v2/silences", `{"matchers":`, "a", ""); code != http.StatusBadRequest {
		t.Fatalf("truncated silence: %d %s, want 400", code, body)
	}
}

// FuzzPostSilence: no body makes POST /api/v2/silences panic or answer a
// server error; malformed silences are 400 (or 404 for an unknown id, 413
// for one over the size limit).
func FuzzPostSilence(f *testing.F) {
	for _, s := range []string{
		silenceBody("A"),
		`{"matchers":[{"name":"job","value":"(","isRegex":true}],"endsAt":"2030-01-01T00:00:00Z","createdBy":"t","comment":"c"}`,
		`{"matchers":[{"name":"","value":"","isRegex":false,"isEqual":false}],"startsAt":"2030-01-01T00:00:00Z","endsAt":"2029-01-01T00:00:00Z"}`,
		`{"id":"nope","matchers":[{"name":"a","value":"b"}],"endsAt":"2030-01-01T00:00:00Z","createdBy":"t","comment":"c"}`,
		`[]`, `null`, `{"matchers":null}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		api := authAPI(t)
		code, resp := call(t, api, "POST", "/api/v2/silences", body, "a", "")
		switch code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("POST %q: %d %s", body, code, resp)
		}
	})
}
