// Package webhook posts Alertmanager webhook v4 JSON, so anything that
// consumes Alertmanager's webhook (VictorOps, Opsgenie, custom bridges) can
// consume Klaxon's.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/alertmanager/alert"
	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
	commoncfg "github.com/prometheus/common/config"

	"github.com/klaxon-sh/klaxon/services/notify"
)

// Notifier posts webhook messages.
type Notifier struct {
	conf   *amwebhook.WebhookConfig
	tmpl   *template.Template
	log    *slog.Logger
	client *http.Client
}

// New builds a webhook notifier from an Alertmanager webhook_config.
func New(conf *amwebhook.WebhookConfig, tmpl *template.Template, log *slog.Logger) (*Notifier, error) {
	hc := commoncfg.DefaultHTTPClientConfig
	if conf.HTTPConfig != nil {
		hc = *conf.HTTPConfig
	}
	client, err := commoncfg.NewClientFromConfig(hc, "webhook")
	if err != nil {
		return nil, fmt.Errorf("webhook http_config: %w", err)
	}
	return &Notifier{conf: conf, tmpl: tmpl, log: log, client: client}, nil
}

// Notify implements notify.Notifier.
func (n *Notifier) Notify(ctx context.Context, no *notify.Notification) (bool, error) {
	alerts, truncated := truncate(n.conf.MaxAlerts, no.Alerts)
	trimmed := *no
	trimmed.Alerts = alerts
	msg := &amwebhook.Message{
		Version:         "4",
		Data:            trimmed.Data(n.tmpl),
		GroupKey:        no.GroupKey,
		TruncatedAlerts: truncated,
	}
	// Status reflects the whole group, not just the alerts that fit.
	msg.Status = string(no.Status())
	body, err := json.Marshal(msg)
	if err != nil {
		return false, &notify.Error{Reason: notify.ReasonOther, Err: err}
	}
	url, err := n.url(msg.Data)
	if err != nil {
		return false, &notify.Error{Reason: notify.ReasonConfig, Err: err}
	}
	if n.conf.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.conf.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, &notify.Error{Reason: notify.ReasonConfig, Err: redact(err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Klaxon")
	// The notification's idempotency key (receiver, group key, alert set,
	// status): a consumer that honours it can drop the one resend a crash
	// between sending and recording may cause.
	if no.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", no.IdempotencyKey)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return true, &notify.Error{Reason: notify.ReasonNetwork, Err: redact(err)}
	}
	defer resp.Body.Close()
	return notify.CheckResponse(resp)
}

func (n *Notifier) url(data *template.Data) (string, error) {
	raw := string(n.conf.URL)
	if raw == "" && n.conf.URLFile != "" {
		b, err := os.ReadFile(n.conf.URLFile)
		if err != nil {
			return "", fmt.Errorf("read url_file: %w", err)
		}
		raw = strings.TrimSpace(string(b))
	}
	if strings.Contains(raw, "{{") {
		out, err := n.tmpl.ExecuteTextString(raw, data)
		if err != nil {
			return "", fmt.Errorf("template url: %w", err)
		}
		raw = out
	}
	if raw == "" {
		return "", errors.New("webhook URL is empty")
	}
	return raw, nil
}

func truncate(max uint64, alerts []*alert.Alert) ([]*alert.Alert, uint64) {
	if max != 0 && uint64(len(alerts)) > max {
		return alerts[:max], uint64(len(alerts)) - max
	}
	return alerts, 0
}

// redact drops the URL from transport errors: webhook URLs often hold secrets.
func redact(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil && strings.HasPrefix(err.Error(), "Post ") {
			return fmt.Errorf("post <redacted url>: %w", inner)
		}
	}
	return err
}
