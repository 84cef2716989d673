package peers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// PDEvent is one accepted Events API v2 event.
type PDEvent struct {
	RoutingKey  string `json:"routing_key"`
	EventAction string `json:"event_action"`
	DedupKey    string `json:"dedup_key"`
	Client      string `json:"client"`
	ClientURL   string `json:"client_url"`
	Payload     *struct {
		Summary       string         `json:"summary"`
		Source        string         `json:"source"`
		Severity      string         `json:"severity"`
		Timestamp     string         `json:"timestamp"`
		Component     string         `json:"component"`
		Group         string         `json:"group"`
		Class         string         `json:"class"`
		CustomDetails map[string]any `json:"custom_details"`
	} `json:"payload"`
	Links []struct {
		Href string `json:"href"`
		Text string `json:"text"`
	} `json:"links"`
	Images []struct {
		Src string `json:"src"`
	} `json:"images"`
}

// PagerDuty is an Events API v2 endpoint (POST /v2/enqueue) that enforces
// the contract — JSON body, 32-character routing key, event_action trigger,
// acknowledge or resolve, dedup_key at most 255 characters and required
// unless triggering, a trigger's payload with summary (≤ 1024), source and
// one of the four severities — answering 400 "invalid event" otherwise and
// 202 with the dedup_key when accepted.
type PagerDuty struct {
	srv *httptest.Server

	mu       sync.Mutex
	events   []PDEvent
	rejected int
}

// NewPagerDuty starts the endpoint.
func NewPagerDuty(t testing.TB) *PagerDuty {
	p := &PagerDuty{}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

// URL is the events endpoint, for pagerduty_configs' url.
func (p *PagerDuty) URL() string { return p.srv.URL + "/v2/enqueue" }

// Events returns the accepted events in order.
func (p *PagerDuty) Events() []PDEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]PDEvent(nil), p.events...)
}

// Actions returns the event actions accepted per dedup_key, in order.
func (p *PagerDuty) Actions() map[string][]string {
	out := map[string][]string{}
	for _, e := range p.Events() {
		out[e.DedupKey] = append(out[e.DedupKey], e.EventAction)
	}
	return out
}

// Rejected counts the events answered 400.
func (p *PagerDuty) Rejected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rejected
}

func (p *PagerDuty) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v2/enqueue" {
		http.NotFound(w, r)
		return
	}
	var ev PDEvent
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 512<<10))
	var problems []string
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		problems = append(problems, "Content-Type must be application/json")
	}
	if err := dec.Decode(&ev); err != nil {
		problems = append(problems, "body is not a JSON event: "+err.Error())
	}
	problems = append(problems, validatePD(&ev)...)
	w.Header().Set("Content-Type", "application/json")
	if len(problems) > 0 {
		p.mu.Lock()
		p.rejected++
		p.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "invalid event", "message": "Event object is invalid", "errors": problems})
		return
	}
	if ev.DedupKey == "" {
		ev.DedupKey = fmt.Sprintf("pd-%d", time.Now().UnixNano())
	}
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "message": "Event processed", "dedup_key": ev.DedupKey})
}

func validatePD(ev *PDEvent) []string {
	var out []string
	if len(ev.RoutingKey) != 32 {
		out = append(out, "'routing_key' must be 32 characters")
	}
	switch ev.EventAction {
	case "trigger":
		if ev.Payload == nil {
			return append(out, "'payload' is missing")
		}
		if ev.Payload.Summary == "" || len(ev.Payload.Summary) > 1024 {
			out = append(out, "'payload.summary' is required and at most 1024 characters")
		}
		if ev.Payload.Source == "" {
			out = append(out, "'payload.source' is required")
		}
		switch ev.Payload.Severity {
		case "critical", "error", "warning", "info":
		default:
			out = append(out, "'payload.severity' must be critical, error, warning or info")
		}
	case "acknowledge", "resolve":
		if ev.DedupKey == "" {
			out = append(out, "'dedup_key' is required to "+ev.EventAction)
		}
	default:
		out = append(out, "'event_action' must be trigger, acknowledge or resolve")
	}
	if len(ev.DedupKey) > 255 {
		out = append(out, "'dedup_key' is at most 255 characters")
	}
	return out
}
