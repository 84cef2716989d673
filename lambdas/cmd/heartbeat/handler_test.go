package main

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

type memStore map[string]time.Time

func (m memStore) Record(_ context.Context, source string, at time.Time) (bool, error) {
	if old, ok := m[source]; ok && !old.Before(at) {
		return false, nil
	}
	m[source] = at
	return true, nil
}

func TestHandle(t *testing.T) {
	watchdog, err := os.ReadFile(filepath.Join("..", "..", "testdata", "alertmanager-watchdog.json"))
	if err != nil {
		t.Fatal(err)
	}
	resolved := []byte(`{"version":"4","status":"resolved","alerts":[{"status":"resolved","labels":{"alertname":"Watchdog","cluster":"x"}}]}`)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, method, path, auth string
		body                     []byte
		code                     int
		source                   string
	}{
		{"ok via label", "POST", "/", "Bearer tok", watchdog, 200, "prod-eu"},
		{"ok via path", "POST", "/edge-1", "bearer tok", watchdog, 200, "edge-1"},
		{"wrong token", "POST", "/", "Bearer tok2", watchdog, 401, ""},
		{"prefix of token", "POST", "/", "Bearer to", watchdog, 401, ""},
		{"basic auth", "POST", "/", "Basic dG9rOg==", watchdog, 401, ""},
		{"GET", "GET", "/", "Bearer tok", nil, 405, ""},
		{"not a webhook", "POST", "/", "Bearer tok", []byte(`{"alerts":"x"}`), 400, ""},
		{"bad source path", "POST", "/a/b", "Bearer tok", watchdog, 400, ""},
		{"resolved watchdog is no beat", "POST", "/", "Bearer tok", resolved, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := memStore{}
			h := &Handler{
				TokenHash: sha256.Sum256([]byte("tok")), Store: store, Now: func() time.Time { return now },
				Alertnames: []string{"Watchdog"}, SourceLabel: "cluster", MaxBody: 1 << 20,
				Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			}
			req := events.LambdaFunctionURLRequest{RawPath: tc.path, Headers: map[string]string{"authorization": tc.auth}, Body: string(tc.body)}
			req.RequestContext.HTTP.Method = tc.method
			resp, err := h.Handle(context.Background(), req)
			if err != nil || resp.StatusCode != tc.code {
				t.Fatalf("status %d (%v), want %d: %s", resp.StatusCode, err, tc.code, resp.Body)
			}
			if tc.source != "" && !store[tc.source].Equal(now) {
				t.Errorf("source %s not recorded: %v", tc.source, store)
			}
			if tc.source == "" && len(store) != 0 {
				t.Errorf("recorded %v", store)
			}
		})
	}
}

// The configured token is compared with surrounding space trimmed, as the
// request's is: an SSM value written from a file ends in a newline, and
// Alertmanager sends the token without it. Before, every heartbeat got 401
// and the dead-man switch was never armed.
func TestConfiguredTokenWithNewlineAuthorizes(t *testing.T) {
	h := &Handler{TokenHash: tokenHash("tok\n")}
	if !h.authorized(map[string]string{"authorization": "Bearer tok"}) {
		t.Fatal(`a stored "tok\n" refused "Bearer tok"`)
	}
	if h.authorized(map[string]string{"authorization": "Bearer to"}) {
		t.Fatal("a prefix of the token authorized")
	}
}
