// Package receivers assembles a receiver's integrations from its
// Alertmanager configuration: Klaxon's own notify/<name> packages for Slack,
// email, PagerDuty and webhooks, and Alertmanager's own notifier packages
// (adapted) for every other integration an alertmanager.yml may hold.
package receivers

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	ampagerduty "github.com/prometheus/alertmanager/notify/pagerduty"
	"github.com/prometheus/alertmanager/template"

	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/notify"
	"github.com/klaxon-sh/klaxon/services/notify/email"
	"github.com/klaxon-sh/klaxon/services/notify/pagerduty"
	"github.com/klaxon-sh/klaxon/services/notify/slack"
	"github.com/klaxon-sh/klaxon/services/notify/webhook"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// Builder builds integrations and caches each tenant's templates.
type Builder struct {
	ExternalURL *url.URL

	bus *bus.Bus
	mu  sync.Mutex
	// tmpls holds each tenant's templates, by name, for the Tenant of the
	// rules they were built from: a reload's new Tenant replaces them (keyed
	// by the Tenant, every reload kept its templates for ever).
	tmpls     map[string]tenantTemplate
	slackRefs jetstream.KeyValue
}

type tenantTemplate struct {
	t  *ruleset.Tenant
	tm *template.Template
}

// Option configures a Builder.
type Option func(*Builder)

// WithBus lets integrations keep state in JetStream KV (Slack message refs,
// so a resolve updates the original message). Without it, Slack posts anew.
func WithBus(b *bus.Bus) Option { return func(bd *Builder) { bd.bus = b } }

// NewBuilder returns a builder whose templates link to externalURL.
func NewBuilder(externalURL *url.URL, opts ...Option) *Builder {
	b := &Builder{ExternalURL: externalURL, tmpls: map[string]tenantTemplate{}}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Template returns the tenant's templates: Alertmanager's defaults plus the
// operator's .tmpl files from `templates:`.
func (b *Builder) Template(t *ruleset.Tenant) (*template.Template, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.tmpls[t.Name]; ok && c.t == t {
		return c.tm, nil
	}
	var globs []string
	if t.Config != nil {
		globs = t.Config.Templates
	}
	tm, err := template.FromGlobs(globs)
	if err != nil {
		return nil, fmt.Errorf("tenant %s templates: %w", t.Name, err)
	}
	// FromGlobs leaves ExternalURL nil and Data() would panic.
	tm.ExternalURL = b.ExternalURL
	b.tmpls[t.Name] = tenantTemplate{t: t, tm: tm}
	return tm, nil
}

func (b *Builder) refs() (jetstream.KeyValue, error) {
	if b.bus == nil {
		return nil, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.slackRefs != nil {
		return b.slackRefs, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Resolves arrive within days; 30 days bounds the bucket.
	kv, err := b.bus.KV(ctx, bus.BucketSlackRefs, 30*24*time.Hour)
	if err != nil {
		// Not a bad receiver: JetStream unreachable for now. The
		// notification is retried, not dead-lettered as a config error.
		return nil, fmt.Errorf("%w: slack message refs bucket: %w", notify.ErrUnavailable, err)
	}
	b.slackRefs = kv
	return kv, nil
}

// Build implements notify.Builder.
func (b *Builder) Build(t *ruleset.Tenant, name string, log *slog.Logger) ([]notify.Integration, error) {
	rcv := t.Receiver(name)
	if rcv == nil {
		return nil, fmt.Errorf("no receiver %q", name)
	}
	if unsupported := Unsupported(rcv); len(unsupported) > 0 {
		return nil, fmt.Errorf("receiver %q: %s", name, unsupported[0])
	}
	tmpl, err := b.Template(t)
	if err != nil {
		return nil, err
	}
	var ints []notify.Integration
	add := func(kind string, i int, sendResolved bool, n notify.Notifier, err error) error {
		if err != nil {
			return fmt.Errorf("receiver %q %s[%d]: %w", name, kind, i, err)
		}
		ints = append(ints, notify.Integration{Name: kind, Index: i, SendResolved: sendResolved, Notifier: n})
		return nil
	}
	for i, c := range rcv.WebhookConfigs {
		n, err := webhook.New(c, tmpl, log.With("integration", "webhook"))
		if err := add("webhook", i, c.SendResolved(), n, err); err != nil {
			return nil, err
		}
	}
	for i, c := range rcv.PagerdutyConfigs {
		if isPagerDutyV1(c) {
			// service_key: the Events API v1, which our package does not
			// speak; Alertmanager's own notifier does, so existing configs
			// (Alertmanager's documentation example among them) keep working.
			n, err := ampagerduty.New(c, tmpl, log.With("integration", "pagerduty"))
			var nt notify.Notifier
			if err == nil {
				nt = adapter{n}
			}
			if err := add("pagerduty", i, c.SendResolved(), nt, err); err != nil {
				return nil, err
			}
			continue
		}
		n, err := pagerduty.New(c, tmpl, log.With("integration", "pagerduty"))
		if err := add("pagerduty", i, c.SendResolved(), n, err); err != nil {
			return nil, err
		}
	}
	for i, c := range rcv.EmailConfigs {
		n, err := email.New(c, tmpl, log.With("integration", "email"))
		if err := add("email", i, c.SendResolved(), n, err); err != nil {
			return nil, err
		}
	}
	if len(rcv.SlackConfigs) > 0 {
		kv, err := b.refs()
		if err != nil {
			return nil, err
		}
		for i, c := range rcv.SlackConfigs {
			var opts []slack.Option
			if kv != nil {
				opts = append(opts, slack.WithRefs(kv, t.Name+"/"+name+"/"+fmt.Sprint(i)))
			}
			n, err := slack.New(c, tmpl, log.With("integration", "slack"), opts...)
			if err := add("slack", i, c.SendResolved(), n, err); err != nil {
				return nil, err
			}
		}
	}
	others, err := alertmanagerIntegrations(rcv, tmpl, log)
	if err != nil {
		return nil, fmt.Errorf("receiver %q: %w", name, err)
	}
	return append(ints, others...), nil
}
