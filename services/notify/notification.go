// Package notify delivers the notifications the engine publishes. It holds the
// types every integration shares (Notification, Notifier, Integration), the
// delivery pipeline (idempotency, retries, rate limits, dead letters, audit)
// and no integration itself: those live in notify/<name>, one package each,
// assembled by notify/receivers.
package notify

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/alertmanager/alert"
	amnotify "github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
)

// Notification is one flush of an aggregation group for one receiver, in the
// types Alertmanager's template package understands.
type Notification struct {
	Tenant         string
	Receiver       string
	GroupKey       string
	GroupLabels    model.LabelSet
	Alerts         []*alert.Alert
	IdempotencyKey string
	// Now is when the delivery is attempted; it decides firing vs resolved
	// for alerts whose endsAt is in the future.
	Now time.Time
	// CreatedAt is when the engine decided the notification; PreviousKey
	// and PreviousAt name the group's notification before it (if any).
	CreatedAt   time.Time
	PreviousKey string
	PreviousAt  time.Time
}

// Notifier sends a notification through one integration. retry says whether
// a failure is worth trying again (network errors, 5xx, 408, 429).
type Notifier interface {
	Notify(ctx context.Context, n *Notification) (retry bool, err error)
}

// Integration is one configured notifier of a receiver (e.g. its second
// webhook_config).
type Integration struct {
	Name         string // webhook, slack, email, pagerduty, ...
	Index        int
	SendResolved bool
	Notifier     Notifier
}

// FromProto converts the bus form into the template form.
func FromProto(p *klaxonv1.Notification, now time.Time) *Notification {
	n := &Notification{
		Tenant:         p.Tenant,
		Receiver:       p.Receiver,
		GroupKey:       p.GroupKey,
		GroupLabels:    labelSet(p.GroupLabels),
		IdempotencyKey: p.IdempotencyKey,
		Now:            now,
		PreviousKey:    p.PreviousKey,
		Alerts:         make([]*alert.Alert, 0, len(p.Alerts)),
	}
	if p.CreatedAt != nil {
		n.CreatedAt = p.CreatedAt.AsTime()
	}
	if p.PreviousAt != nil {
		n.PreviousAt = p.PreviousAt.AsTime()
	}
	for _, a := range p.Alerts {
		ta := &alert.Alert{Alert: model.Alert{
			Labels:       labelSet(a.Labels),
			Annotations:  labelSet(a.Annotations),
			StartsAt:     a.StartsAt.AsTime(),
			GeneratorURL: a.GeneratorUrl,
		}}
		if a.EndsAt != nil {
			ta.EndsAt = a.EndsAt.AsTime()
		}
		// Alertmanager decides status by endsAt; make it agree with ours.
		if a.Status == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED {
			if ta.EndsAt.IsZero() || ta.EndsAt.After(now) {
				ta.EndsAt = now
			}
		} else if !ta.EndsAt.IsZero() && !ta.EndsAt.After(now) {
			ta.EndsAt = time.Time{}
		}
		ta.UpdatedAt = now
		n.Alerts = append(n.Alerts, ta)
	}
	return n
}

func labelSet(m map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(m))
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}

// Status is firing if any alert fires.
func (n *Notification) Status() model.AlertStatus {
	return alert.Alerts(n.Alerts...).StatusAt(n.Now)
}

// Context returns ctx carrying what Alertmanager's notify helpers read
// (receiver, group key and labels), so its utilities work unchanged.
func (n *Notification) Context(ctx context.Context) context.Context {
	ctx = amnotify.WithReceiverName(ctx, n.Receiver)
	ctx = amnotify.WithGroupKey(ctx, n.GroupKey)
	ctx = amnotify.WithGroupLabels(ctx, n.GroupLabels)
	ctx = amnotify.WithNow(ctx, n.Now)
	ctx = amnotify.WithNotificationReason(ctx, amnotify.ReasonUnknown)
	return ctx
}

// Data is the template data, exactly as Alertmanager builds it.
func (n *Notification) Data(tmpl *template.Template) *template.Data {
	d := tmpl.Data(n.Receiver, n.GroupLabels, nil, "", n.Alerts...)
	// tmpl.Data derives status from time.Now; use the notification's clock.
	d.Status = string(n.Status())
	for i, a := range n.Alerts {
		d.Alerts[i].Status = string(a.StatusAt(n.Now))
	}
	return d
}

// Resolved reports whether every alert is resolved.
func (n *Notification) Resolved() bool { return n.Status() == model.AlertResolved }

// Logger enriches log with the notification's identity.
func (n *Notification) Logger(log *slog.Logger) *slog.Logger {
	return log.With("tenant", n.Tenant, "receiver", n.Receiver, "group_key", n.GroupKey)
}
