package alerting

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Webhook is Alertmanager's webhook payload, version 4. Only the fields the
// Lambdas use are declared; unknown fields are ignored, as newer senders add
// some.
type Webhook struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a Webhook.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// ErrNotWebhook is returned by ParseWebhook for JSON that is not one.
var ErrNotWebhook = errors.New("not an Alertmanager webhook payload")

// ParseWebhook decodes a version 4 payload and checks what it must hold.
func ParseWebhook(data []byte) (*Webhook, error) {
	var w Webhook
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotWebhook, err)
	}
	if w.Version != "4" {
		return nil, fmt.Errorf("%w: version %q, want \"4\"", ErrNotWebhook, w.Version)
	}
	if w.Alerts == nil {
		return nil, fmt.Errorf("%w: field \"alerts\" is required", ErrNotWebhook)
	}
	for i, a := range w.Alerts {
		if len(a.Labels) == 0 {
			return nil, fmt.Errorf("%w: alerts[%d].labels: required", ErrNotWebhook, i)
		}
		if a.Status != "firing" && a.Status != "resolved" {
			return nil, fmt.Errorf("%w: alerts[%d].status: %q is neither firing nor resolved", ErrNotWebhook, i, a.Status)
		}
	}
	return &w, nil
}

// PostableAlert is one element of the Alertmanager API v2 POST /api/v2/alerts
// body.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     *time.Time        `json:"startsAt,omitempty"`
	EndsAt       *time.Time        `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Postable maps webhook alerts to API v2 alerts. A firing alert is sent
// without the sender's endsAt (Alertmanager's webhook fills it with the zero
// time or a resend deadline); a resolved one keeps its endsAt, which is what
// marks it resolved in API v2.
func (w *Webhook) Postable() []PostableAlert {
	out := make([]PostableAlert, 0, len(w.Alerts))
	for _, a := range w.Alerts {
		p := PostableAlert{Labels: a.Labels, Annotations: a.Annotations, GeneratorURL: a.GeneratorURL}
		if !a.StartsAt.IsZero() {
			t := a.StartsAt
			p.StartsAt = &t
		}
		if a.Status == "resolved" && !a.EndsAt.IsZero() {
			t := a.EndsAt
			p.EndsAt = &t
		}
		out = append(out, p)
	}
	return out
}

// AlertNotice renders one Alertmanager alert as a fallback Notice. The key is
// stable across firing and resolved so PagerDuty pairs them.
func AlertNotice(a PostableAlert, firing bool, source string) *Notice {
	name := a.Labels["alertname"]
	if name == "" {
		name = "alert"
	}
	summary := a.Annotations["summary"]
	if summary == "" {
		summary = a.Annotations["description"]
	}
	if summary == "" {
		summary = name
	} else {
		summary = name + ": " + summary
	}
	n := &Notice{
		Key:       "klaxon-alert/" + labelsKey(a.Labels),
		Status:    Firing,
		Severity:  severityOf(a.Labels["severity"]),
		Summary:   summary,
		Source:    source,
		Component: "alertmanager",
		Details:   map[string]string{},
	}
	if !firing {
		n.Status = Resolved
	}
	for k, v := range a.Labels {
		n.Details["label."+k] = v
	}
	if a.StartsAt != nil {
		n.Time = *a.StartsAt
	}
	return n
}

// labelsKey is a readable, order-independent identity of a label set.
func labelsKey(l map[string]string) string {
	s := ""
	for _, k := range sortedKeys(l) {
		if s != "" {
			s += ","
		}
		s += k + "=" + l[k]
	}
	return s
}

// severityOf maps the usual Prometheus severity labels to PagerDuty's four.
func severityOf(label string) string {
	switch label {
	case "critical", "page", "p1", "P1":
		return SeverityCritical
	case "error", "high", "major", "p2", "P2":
		return SeverityError
	case "warning", "warn", "minor", "p3", "P3":
		return SeverityWarning
	case "info", "none", "low", "p4", "P4", "p5", "P5":
		return SeverityInfo
	}
	return SeverityCritical
}
