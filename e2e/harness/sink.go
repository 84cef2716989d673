package harness

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// WebhookMessage is Alertmanager's webhook v4 payload as a sink sees it.
type WebhookMessage struct {
	Version     string            `json:"version"`
	GroupKey    string            `json:"groupKey"`
	Status      string            `json:"status"`
	Receiver    string            `json:"receiver"`
	GroupLabels map[string]string `json:"groupLabels"`
	Alerts      []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
		EndsAt      time.Time         `json:"endsAt"`
		Fingerprint string            `json:"fingerprint"`
	} `json:"alerts"`
	TruncatedAlerts int `json:"truncatedAlerts"`
	Path            string
	At              time.Time
	// IdempotencyKey is the Idempotency-Key header Klaxon sends.
	IdempotencyKey string
}

// Sink is a webhook target that records every valid v4 message. It answers
// 400 to malformed bodies (as real consumers do) and 503 while Down.
type Sink struct {
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []WebhookMessage
	down bool
}

// NewSink starts a sink on loopback.
func NewSink(t testing.TB) *Sink {
	s := &Sink{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var m WebhookMessage
	if err := json.Unmarshal(body, &m); err != nil || m.Version != "4" || len(m.Alerts) == 0 {
		http.Error(w, "not an Alertmanager webhook v4 message", http.StatusBadRequest)
		return
	}
	m.Path = r.URL.Path
	m.At = time.Now()
	m.IdempotencyKey = r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// URL of the sink (append a path to tell receivers apart).
func (s *Sink) URL() string { return s.srv.URL }

// SetDown makes the sink answer 503.
func (s *Sink) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// Messages returns a copy of what was received.
func (s *Sink) Messages() []WebhookMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]WebhookMessage(nil), s.msgs...)
}

// AlertsByLabel counts received alerts (status) per value of label.
func (s *Sink) AlertsByLabel(label, status string) map[string]int {
	out := map[string]int{}
	for _, m := range s.Messages() {
		for _, a := range m.Alerts {
			if status == "" || a.Status == status {
				out[a.Labels[label]]++
			}
		}
	}
	return out
}

// Unique returns the messages with repeated Idempotency-Keys dropped, as a
// consumer that honours the header sees them.
func (s *Sink) Unique() []WebhookMessage {
	seen := map[string]bool{}
	var out []WebhookMessage
	for _, m := range s.Messages() {
		if m.IdempotencyKey != "" && seen[m.IdempotencyKey] {
			continue
		}
		seen[m.IdempotencyKey] = true
		out = append(out, m)
	}
	return out
}
