package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultPagerDutyURL is the Events API v2 endpoint.
const DefaultPagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

// PagerDuty sends Events API v2 trigger and resolve events. The notice key is
// the dedup_key, so a resolve closes the incident its trigger opened and a
// repeated trigger does not open a second one.
type PagerDuty struct {
	URL        string // empty: DefaultPagerDutyURL
	RoutingKey string // integration key, 32 characters; a secret
	Client     *http.Client
	// Backoff is the first retry delay, doubled per attempt; default 200ms.
	Backoff time.Duration
}

// Name implements Notifier.
func (p *PagerDuty) Name() string { return "pagerduty" }

type pdEvent struct {
	RoutingKey  string     `json:"routing_key"`
	EventAction string     `json:"event_action"`
	DedupKey    string     `json:"dedup_key,omitempty"`
	Payload     *pdPayload `json:"payload,omitempty"`
	Client      string     `json:"client,omitempty"`
}

type pdPayload struct {
	Summary       string            `json:"summary"`
	Source        string            `json:"source"`
	Severity      string            `json:"severity"`
	Timestamp     string            `json:"timestamp,omitempty"`
	Component     string            `json:"component,omitempty"`
	CustomDetails map[string]string `json:"custom_details,omitempty"`
}

// Field limits of the Events API v2.
const (
	pdMaxSummary  = 1024
	pdMaxDedupKey = 255
)

func (p *PagerDuty) event(n *Notice) pdEvent {
	ev := pdEvent{RoutingKey: p.RoutingKey, DedupKey: Truncate(n.Key, pdMaxDedupKey), Client: "Klaxon Lambda"}
	if n.Status == Resolved {
		// A resolve needs only the routing and dedup keys.
		ev.EventAction = "resolve"
		return ev
	}
	ev.EventAction = "trigger"
	sev := n.Severity
	if !ValidSeverity(sev) {
		sev = SeverityCritical
	}
	src := n.Source
	if src == "" {
		src = "klaxon-lambda"
	}
	ev.Payload = &pdPayload{
		Summary:       Truncate(oneLine(n.Summary), pdMaxSummary),
		Source:        src,
		Severity:      sev,
		Component:     n.Component,
		CustomDetails: n.Details,
	}
	if !n.Time.IsZero() {
		ev.Payload.Timestamp = n.Time.UTC().Format(time.RFC3339)
	}
	return ev
}

// Notify implements Notifier. PagerDuty answers 202 when it queued the event,
// 400 for a malformed one (final), 429 and 5xx when it wants a retry, which is
// attempted a few times within ctx.
func (p *PagerDuty) Notify(ctx context.Context, n *Notice) error {
	body, err := json.Marshal(p.event(n))
	if err != nil {
		return fmt.Errorf("pagerduty: encode: %w", err)
	}
	url := p.URL
	if url == "" {
		url = DefaultPagerDutyURL
	}
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	backoff := p.Backoff
	if backoff <= 0 {
		backoff = 200 * time.Millisecond
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("pagerduty: %w (last: %w)", ctx.Err(), last)
			case <-t.C:
			}
			backoff *= 2
		}
		var retry bool
		retry, last = p.post(ctx, client, url, body)
		if last == nil || !retry {
			return last
		}
	}
	return last
}

func (p *PagerDuty) post(ctx context.Context, client *http.Client, url string, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("pagerduty: build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return true, fmt.Errorf("pagerduty: post: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch {
	case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("pagerduty: status %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return false, fmt.Errorf("pagerduty: status %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
}
