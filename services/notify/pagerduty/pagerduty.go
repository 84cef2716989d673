// Package pagerduty sends PagerDuty Events API v2 events (trigger and
// resolve) from an Alertmanager pagerduty_config.
package pagerduty

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	ampd "github.com/prometheus/alertmanager/notify/pagerduty"
	"github.com/prometheus/alertmanager/template"
	commoncfg "github.com/prometheus/common/config"

	"github.com/klaxon-sh/klaxon/services/notify"
)

// DefaultURL is the Events API v2 endpoint.
const DefaultURL = "https://events.pagerduty.com/v2/enqueue"

// Limits of the Events API v2.
const (
	maxSummaryRunes = 1024
	maxDedupKey     = 255
)

// Notifier sends Events API v2 events.
type Notifier struct {
	conf   *ampd.PagerdutyConfig
	tmpl   *template.Template
	log    *slog.Logger
	client *http.Client
}

// New builds a notifier from an Alertmanager pagerduty_config. Only Events
// API v2 (routing_key) is supported: service_key is the retired v1 API.
func New(conf *ampd.PagerdutyConfig, tmpl *template.Template, log *slog.Logger) (*Notifier, error) {
	if conf.RoutingKey == "" && conf.RoutingKeyFile == "" {
		return nil, errors.New("pagerduty: routing_key is required (service_key, the Events API v1, is not supported)")
	}
	hc := commoncfg.DefaultHTTPClientConfig
	if conf.HTTPConfig != nil {
		hc = *conf.HTTPConfig
	}
	client, err := commoncfg.NewClientFromConfig(hc, "pagerduty")
	if err != nil {
		return nil, fmt.Errorf("pagerduty http_config: %w", err)
	}
	return &Notifier{conf: conf, tmpl: tmpl, log: log, client: client}, nil
}

// DedupKey derives PagerDuty's dedup_key from a group key: the group key can
// exceed 255 characters and hold anything, its SHA-256 hex is 64 and stable,
// so trigger and resolve of one group always meet on the same incident.
func DedupKey(groupKey string) string {
	sum := sha256.Sum256([]byte(groupKey))
	return hex.EncodeToString(sum[:])[:min(64, maxDedupKey)]
}

// Notify implements notify.Notifier.
func (n *Notifier) Notify(ctx context.Context, no *notify.Notification) (bool, error) {
	ev, err := n.event(no)
	if err != nil {
		return false, err
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return false, &notify.Error{Reason: notify.ReasonOther, Err: err}
	}
	url := DefaultURL
	if n.conf.URL != nil && n.conf.URL.String() != "" {
		url = n.conf.URL.String()
	}
	if n.conf.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.conf.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, &notify.Error{Reason: notify.ReasonConfig, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Klaxon")
	resp, err := n.client.Do(req)
	if err != nil {
		return true, &notify.Error{Reason: notify.ReasonNetwork, Err: fmt.Errorf("post pagerduty event: %w", errors.Unwrap(err))}
	}
	defer resp.Body.Close()
	// 202 Accepted is success; 400 is a bad event (never retried); 429 and
	// 5xx are retried — exactly the shared policy.
	return notify.CheckResponse(resp)
}

// event builds the wire body.
func (n *Notifier) event(no *notify.Notification) (*event, error) {
	data := no.Data(n.tmpl)
	var terr error
	tmpl := func(s string) string {
		if terr != nil || s == "" {
			return ""
		}
		out, err := n.tmpl.ExecuteTextString(s, data)
		if err != nil {
			terr = fmt.Errorf("template %q: %w", s, err)
		}
		return out
	}
	key, err := n.routingKey()
	if err != nil {
		return nil, &notify.Error{Reason: notify.ReasonConfig, Err: err}
	}
	ev := &event{
		RoutingKey:  tmpl(key),
		EventAction: "trigger",
		DedupKey:    DedupKey(no.GroupKey),
	}
	if no.Resolved() {
		ev.EventAction = "resolve"
	}
	client, clientURL := tmpl(n.conf.Client), tmpl(n.conf.ClientURL)
	if client == "" {
		client = "Klaxon"
	}
	ev.Client, ev.ClientURL = client, clientURL
	if ev.EventAction == "trigger" {
		for _, l := range n.conf.Links {
			if href := tmpl(l.Href); href != "" {
				ev.Links = append(ev.Links, link{Href: href, Text: tmpl(l.Text)})
			}
		}
		for _, im := range n.conf.Images {
			if src := tmpl(im.Src); src != "" {
				ev.Images = append(ev.Images, image{Src: src, Alt: tmpl(im.Alt), Href: tmpl(im.Href)})
			}
		}
		source := tmpl(n.conf.Source)
		if source == "" {
			source = client
		}
		ev.Payload = &payload{
			Summary:   truncate(tmpl(n.conf.Description), maxSummaryRunes),
			Source:    source,
			Severity:  n.severity(tmpl, data),
			Class:     tmpl(n.conf.Class),
			Component: tmpl(n.conf.Component),
			Group:     tmpl(n.conf.Group),
			Details:   n.details(tmpl),
		}
		if ev.Payload.Summary == "" {
			ev.Payload.Summary = truncate(data.CommonLabels["alertname"], maxSummaryRunes)
		}
	}
	if terr != nil {
		return nil, &notify.Error{Reason: notify.ReasonTemplate, Err: terr}
	}
	return ev, nil
}

func (n *Notifier) routingKey() (string, error) {
	if n.conf.RoutingKey != "" {
		return string(n.conf.RoutingKey), nil
	}
	b, err := os.ReadFile(n.conf.RoutingKeyFile)
	if err != nil {
		return "", fmt.Errorf("read routing_key_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// details are the config's details, templated; without any, the same
// defaults Alertmanager sends (firing/resolved instance lists and counts).
func (n *Notifier) details(tmpl func(string) string) map[string]any {
	src := n.conf.Details
	if len(src) == 0 {
		src = map[string]any{
			"firing":       `{{ template "pagerduty.default.instances" .Alerts.Firing }}`,
			"resolved":     `{{ template "pagerduty.default.instances" .Alerts.Resolved }}`,
			"num_firing":   `{{ .Alerts.Firing | len }}`,
			"num_resolved": `{{ .Alerts.Resolved | len }}`,
		}
	}
	out := make(map[string]any, len(src))
	for k, v := range src {
		if s, ok := v.(string); ok {
			out[k] = tmpl(s)
			continue
		}
		out[k] = v
	}
	return out
}

// severity is the configured severity (templated) or, when none is set,
// the alerts' common `severity` label, mapped onto PagerDuty's four values.
func (n *Notifier) severity(tmpl func(string) string, data *template.Data) string {
	if n.conf.Severity != "" {
		if s, ok := MapSeverity(tmpl(n.conf.Severity)); ok {
			return s
		}
		return "error"
	}
	if s, ok := MapSeverity(data.CommonLabels["severity"]); ok {
		return s
	}
	return "error"
}

// MapSeverity maps common severity label values onto critical, error,
// warning and info.
func MapSeverity(v string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "critical", "crit", "page", "p1", "p0", "emergency", "fatal", "disaster":
		return "critical", true
	case "error", "err", "high", "major", "p2":
		return "error", true
	case "warning", "warn", "medium", "minor", "average", "p3":
		return "warning", true
	case "info", "informational", "low", "none", "notice", "p4", "p5", "ok":
		return "info", true
	}
	return "", false
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// Wire format of https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
type event struct {
	RoutingKey  string   `json:"routing_key"`
	EventAction string   `json:"event_action"`
	DedupKey    string   `json:"dedup_key,omitempty"`
	Client      string   `json:"client,omitempty"`
	ClientURL   string   `json:"client_url,omitempty"`
	Payload     *payload `json:"payload,omitempty"`
	Images      []image  `json:"images,omitempty"`
	Links       []link   `json:"links,omitempty"`
}

type payload struct {
	Summary   string         `json:"summary"`
	Source    string         `json:"source"`
	Severity  string         `json:"severity"`
	Timestamp string         `json:"timestamp,omitempty"`
	Component string         `json:"component,omitempty"`
	Group     string         `json:"group,omitempty"`
	Class     string         `json:"class,omitempty"`
	Details   map[string]any `json:"custom_details,omitempty"`
}

type image struct {
	Src  string `json:"src"`
	Href string `json:"href,omitempty"`
	Alt  string `json:"alt,omitempty"`
}

type link struct {
	Href string `json:"href"`
	Text string `json:"text,omitempty"`
}
