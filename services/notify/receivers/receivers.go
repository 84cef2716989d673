// Package receivers assembles a receiver's integrations from its
// Alertmanager configuration, one notify/<name> package per integration.
package receivers

import (
	"fmt"
	"log/slog"
	"net/url"
	"sync"

	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"

	"github.com/klaxon-sh/klaxon/services/notify"
	"github.com/klaxon-sh/klaxon/services/notify/webhook"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// Builder builds integrations and caches each tenant's templates.
type Builder struct {
	ExternalURL *url.URL

	mu    sync.Mutex
	tmpls map[*ruleset.Tenant]*template.Template
}

// NewBuilder returns a builder whose templates link to externalURL.
func NewBuilder(externalURL *url.URL) *Builder {
	return &Builder{ExternalURL: externalURL, tmpls: map[*ruleset.Tenant]*template.Template{}}
}

// Template returns the tenant's templates: Alertmanager's defaults plus the
// operator's .tmpl files from `templates:`.
func (b *Builder) Template(t *ruleset.Tenant) (*template.Template, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if tm, ok := b.tmpls[t]; ok {
		return tm, nil
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
	b.tmpls[t] = tm
	return tm, nil
}

// Build implements notify.Builder.
func (b *Builder) Build(t *ruleset.Tenant, name string, log *slog.Logger) ([]notify.Integration, error) {
	rcv := t.Receiver(name)
	if rcv == nil {
		return nil, fmt.Errorf("no receiver %q", name)
	}
	tmpl, err := b.Template(t)
	if err != nil {
		return nil, err
	}
	var ints []notify.Integration
	for i, c := range rcv.WebhookConfigs {
		n, err := webhook.New(c, tmpl, log.With("integration", "webhook"))
		if err != nil {
			return nil, err
		}
		ints = append(ints, notify.Integration{Name: "webhook", Index: i, SendResolved: c.SendResolved(), Notifier: n})
	}
	if unsupported := Unsupported(rcv); len(unsupported) > 0 {
		return nil, fmt.Errorf("receiver %q uses integrations Klaxon does not deliver yet: %v (use webhook_configs)", name, unsupported)
	}
	return ints, nil
}

// Unsupported lists the integration kinds of rcv that Klaxon cannot deliver.
func Unsupported(rcv *amconfig.Receiver) []string {
	var out []string
	add := func(n int, name string) {
		if n > 0 {
			out = append(out, name)
		}
	}
	add(len(rcv.SlackConfigs), "slack_configs")
	add(len(rcv.EmailConfigs), "email_configs")
	add(len(rcv.PagerdutyConfigs), "pagerduty_configs")
	add(len(rcv.OpsGenieConfigs), "opsgenie_configs")
	add(len(rcv.VictorOpsConfigs), "victorops_configs")
	add(len(rcv.MSTeamsConfigs), "msteams_configs")
	add(len(rcv.MSTeamsV2Configs), "msteamsv2_configs")
	add(len(rcv.TelegramConfigs), "telegram_configs")
	add(len(rcv.DiscordConfigs), "discord_configs")
	add(len(rcv.PushoverConfigs), "pushover_configs")
	add(len(rcv.SNSConfigs), "sns_configs")
	add(len(rcv.WechatConfigs), "wechat_configs")
	add(len(rcv.WebexConfigs), "webex_configs")
	add(len(rcv.JiraConfigs), "jira_configs")
	add(len(rcv.RocketchatConfigs), "rocketchat_configs")
	add(len(rcv.MattermostConfigs), "mattermost_configs")
	add(len(rcv.IncidentioConfigs), "incidentio_configs")
	return out
}
