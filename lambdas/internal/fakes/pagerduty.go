package fakes

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
)

// PDEvent is an Events API v2 event as the fake decoded it.
type PDEvent struct {
	RoutingKey  string `json:"routing_key"`
	EventAction string `json:"event_action"`
	DedupKey    string `json:"dedup_key"`
	Payload     *struct {
		Summary       string            `json:"summary"`
		Source        string            `json:"source"`
		Severity      string            `json:"severity"`
		Timestamp     string            `json:"timestamp"`
		Component     string            `json:"component"`
		CustomDetails map[string]string `json:"custom_details"`
	} `json:"payload"`
}

// PagerDuty is a fake Events API v2 endpoint (POST /v2/enqueue) enforcing
// the published contract: a 32-character routing_key, event_action trigger,
// acknowledge or resolve, for a trigger a payload with summary (at most 1024
// characters), source and severity (critical, error, warning or info), and
// dedup_key for acknowledge/resolve and at most 255 characters. It answers
// 202 {"status":"success","message":"Event processed","dedup_key":…} or 400
// {"status":"invalid event","message":…,"errors":[…]}.
type PagerDuty struct {
	*httptest.Server
	Got Recorder[PDEvent]
	// Fail, when positive, makes that many next requests answer 500.
	Fail atomic.Int32
	n    atomic.Int64
}

// NewPagerDuty starts the fake; URL()+"/v2/enqueue" is the endpoint.
func NewPagerDuty() *PagerDuty {
	p := &PagerDuty{}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	return p
}

// EnqueueURL is the URL to configure as PAGERDUTY_URL.
func (p *PagerDuty) EnqueueURL() string { return p.URL + "/v2/enqueue" }

func (p *PagerDuty) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v2/enqueue" || r.Method != http.MethodPost {
		writeJSON(w, http.StatusNotFound, map[string]string{"status": "not found"})
		return
	}
	if p.Fail.Load() > 0 {
		p.Fail.Add(-1)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"status": "error"})
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 512<<10))
	var ev PDEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		p.invalid(w, "Event object is invalid", err.Error())
		return
	}
	if errs := validatePD(&ev); len(errs) > 0 {
		p.invalid(w, "Event object is invalid", errs...)
		return
	}
	if ev.DedupKey == "" {
		ev.DedupKey = fmt.Sprintf("pd-%d", p.n.Add(1))
	}
	p.Got.add(ev)
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "success", "message": "Event processed", "dedup_key": ev.DedupKey})
}

func (p *PagerDuty) invalid(w http.ResponseWriter, msg string, errs ...string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"status": "invalid event", "message": msg, "errors": errs})
}

func validatePD(ev *PDEvent) []string {
	var errs []string
	if len(ev.RoutingKey) != 32 {
		errs = append(errs, "'routing_key' must be 32 characters")
	}
	if len(ev.DedupKey) > 255 {
		errs = append(errs, "'dedup_key' must be at most 255 characters")
	}
	switch ev.EventAction {
	case "trigger":
		if ev.Payload == nil {
			return append(errs, "'payload' is missing or null")
		}
		if ev.Payload.Summary == "" {
			errs = append(errs, "'payload.summary' is missing or blank")
		}
		if len(ev.Payload.Summary) > 1024 {
			errs = append(errs, "'payload.summary' must be at most 1024 characters")
		}
		if ev.Payload.Source == "" {
			errs = append(errs, "'payload.source' is missing or blank")
		}
		switch ev.Payload.Severity {
		case "critical", "error", "warning", "info":
		default:
			errs = append(errs, "'payload.severity' is invalid (must be one of: critical, error, warning, info)")
		}
	case "acknowledge", "resolve":
		if ev.DedupKey == "" {
			errs = append(errs, "'dedup_key' is required for "+ev.EventAction)
		}
	default:
		errs = append(errs, "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
	}
	return errs
}
