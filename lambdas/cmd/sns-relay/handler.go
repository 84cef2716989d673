package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/klaxon-sh/klaxon/lambdas/alerting"
)

// snsEvent is the Lambda SNS event. It is declared here rather than taken
// from aws-lambda-go's events.SNSEvent because that type parses Timestamp
// into a time.Time, and re-formatting it can change the string (trailing
// zeros) that the SNS signature covers; the receiver verifies that signature.
type snsEvent struct {
	Records []snsRecord `json:"Records"`
}

type snsRecord struct {
	EventSource          string    `json:"EventSource"`
	EventSubscriptionArn string    `json:"EventSubscriptionArn"`
	Sns                  snsEntity `json:"Sns"`
}

type snsEntity struct {
	Type              string          `json:"Type"`
	MessageID         string          `json:"MessageId"`
	TopicArn          string          `json:"TopicArn"`
	Subject           string          `json:"Subject"`
	Message           string          `json:"Message"`
	Timestamp         string          `json:"Timestamp"`
	SignatureVersion  string          `json:"SignatureVersion"`
	Signature         string          `json:"Signature"`
	SigningCertURL    string          `json:"SigningCertUrl"`
	UnsubscribeURL    string          `json:"UnsubscribeUrl"`
	MessageAttributes json.RawMessage `json:"MessageAttributes,omitempty"`
}

// httpNotification is the body SNS POSTs to an HTTP(S) subscriber, which is
// what the receiver's /api/v1/sns accepts. The Lambda event carries the same
// fields, signature included, under slightly different names.
type httpNotification struct {
	Type              string          `json:"Type"`
	MessageID         string          `json:"MessageId"`
	TopicArn          string          `json:"TopicArn"`
	Subject           string          `json:"Subject,omitempty"`
	Message           string          `json:"Message"`
	Timestamp         string          `json:"Timestamp"`
	SignatureVersion  string          `json:"SignatureVersion"`
	Signature         string          `json:"Signature"`
	SigningCertURL    string          `json:"SigningCertURL"`
	UnsubscribeURL    string          `json:"UnsubscribeURL"`
	MessageAttributes json.RawMessage `json:"MessageAttributes,omitempty"`
}

// Handler relays SNS messages to the Klaxon receiver.
type Handler struct {
	Relay *alerting.Relay
	// Severity of fallback notices for messages that carry none.
	Severity string
	Log      *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// firing: an API v2 alert fires until its endsAt has passed. Prometheus
// sends every firing alert with an endsAt ahead (now + 4 evaluation
// intervals); taken for resolved, the fallback resolved an incident that
// never opened instead of paging.
func (h *Handler) firing(a alerting.PostableAlert) bool {
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	return a.EndsAt == nil || a.EndsAt.IsZero() || a.EndsAt.After(now())
}

// delivery is one POST to the receiver and what to send if it fails.
type delivery struct {
	path    string
	body    []byte
	header  http.Header
	notices []*alerting.Notice
}

// Handle is the Lambda entry point. Each record is delivered on its own, so
// one unreachable destination does not hold back the others; the invocation
// fails (and SNS retries it) only if some record reached nobody.
func (h *Handler) Handle(ctx context.Context, ev snsEvent) error {
	var errs []error
	for i := range ev.Records {
		r := &ev.Records[i]
		if r.EventSource != "aws:sns" {
			h.Log.Warn("record skipped", "eventSource", r.EventSource)
			continue
		}
		d, err := h.mapRecord(&r.Sns)
		if err != nil {
			h.Log.Error("record dropped", "messageId", r.Sns.MessageID, "err", err)
			continue
		}
		if err := h.Relay.Deliver(ctx, d.path, d.body, d.header, d.notices); err != nil {
			errs = append(errs, fmt.Errorf("SNS message %s: %w", r.Sns.MessageID, err))
		}
	}
	return errors.Join(errs...)
}

// mapRecord chooses the receiver endpoint: Alertmanager payloads go to
// /api/v2/alerts as alerts (so they group and resolve like alerts), anything
// else goes to /api/v1/sns exactly as SNS would have delivered it over HTTP.
func (h *Handler) mapRecord(m *snsEntity) (*delivery, error) {
	msg := strings.TrimSpace(m.Message)
	source := "sns:" + m.TopicArn
	if strings.HasPrefix(msg, "{") {
		if wh, err := alerting.ParseWebhook([]byte(msg)); err == nil {
			alerts := wh.Postable()
			body, err := json.Marshal(alerts)
			if err != nil {
				return nil, fmt.Errorf("encode alerts: %w", err)
			}
			notices := make([]*alerting.Notice, 0, len(alerts))
			for i, a := range alerts {
				notices = append(notices, alerting.AlertNotice(a, wh.Alerts[i].Status == "firing", source))
			}
			return &delivery{path: alerting.PathAlertsV2, body: body, notices: notices}, nil
		}
	}
	if strings.HasPrefix(msg, "[") {
		var alerts []alerting.PostableAlert
		if json.Unmarshal([]byte(msg), &alerts) == nil && len(alerts) > 0 && allLabelled(alerts) {
			notices := make([]*alerting.Notice, 0, len(alerts))
			for _, a := range alerts {
				notices = append(notices, alerting.AlertNotice(a, h.firing(a), source))
			}
			return &delivery{path: alerting.PathAlertsV2, body: []byte(msg), notices: notices}, nil
		}
	}
	if m.MessageID == "" || m.TopicArn == "" {
		return nil, errors.New(`SNS record: "MessageId" and "TopicArn" are required`)
	}
	typ := m.Type
	if typ == "" {
		typ = "Notification"
	}
	body, err := json.Marshal(httpNotification{
		Type: typ, MessageID: m.MessageID, TopicArn: m.TopicArn, Subject: m.Subject, Message: m.Message,
		Timestamp: m.Timestamp, SignatureVersion: m.SignatureVersion, Signature: m.Signature,
		SigningCertURL: m.SigningCertURL, UnsubscribeURL: m.UnsubscribeURL, MessageAttributes: m.MessageAttributes,
	})
	if err != nil {
		return nil, fmt.Errorf("encode SNS notification: %w", err)
	}
	// The headers SNS sets on HTTP deliveries; the receiver checks the type.
	hdr := http.Header{}
	hdr.Set("x-amz-sns-message-type", typ)
	hdr.Set("x-amz-sns-message-id", m.MessageID)
	hdr.Set("x-amz-sns-topic-arn", m.TopicArn)
	summary := m.Subject
	if summary == "" {
		summary = alerting.Truncate(m.Message, 200)
	}
	n := &alerting.Notice{
		Key:       "klaxon-sns/" + m.MessageID,
		Status:    alerting.Firing,
		Severity:  h.Severity,
		Summary:   summary,
		Source:    source,
		Component: "sns",
		Details:   map[string]string{"topic": m.TopicArn, "messageId": m.MessageID, "message": alerting.Truncate(m.Message, 2000)},
	}
	return &delivery{path: alerting.PathSNS, body: body, header: hdr, notices: []*alerting.Notice{n}}, nil
}

func allLabelled(alerts []alerting.PostableAlert) bool {
	for _, a := range alerts {
		if len(a.Labels) == 0 {
			return false
		}
	}
	return true
}
