package receivers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/alertmanager/alert"
	amconfig "github.com/prometheus/alertmanager/config"
	amnotify "github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/notify/discord"
	"github.com/prometheus/alertmanager/notify/incidentio"
	"github.com/prometheus/alertmanager/notify/jira"
	"github.com/prometheus/alertmanager/notify/mattermost"
	"github.com/prometheus/alertmanager/notify/msteams"
	"github.com/prometheus/alertmanager/notify/msteamsv2"
	"github.com/prometheus/alertmanager/notify/opsgenie"
	ampagerduty "github.com/prometheus/alertmanager/notify/pagerduty"
	"github.com/prometheus/alertmanager/notify/pushover"
	"github.com/prometheus/alertmanager/notify/rocketchat"
	"github.com/prometheus/alertmanager/notify/sns"
	"github.com/prometheus/alertmanager/notify/telegram"
	"github.com/prometheus/alertmanager/notify/victorops"
	"github.com/prometheus/alertmanager/notify/webex"
	"github.com/prometheus/alertmanager/notify/wechat"
	"github.com/prometheus/alertmanager/template"

	"github.com/klaxon-sh/klaxon/services/notify"
)

// amNotifier is what every Alertmanager notifier package implements.
type amNotifier interface {
	Notify(ctx context.Context, alerts ...*alert.Alert) (bool, error)
}

// adapter delivers through one of Alertmanager's own notifiers. The pipeline
// calls it with a context from Notification.Context, which carries the
// receiver name, group key and labels those notifiers read, so VictorOps,
// Opsgenie, MS Teams, Telegram, ... behave exactly as in Alertmanager.
type adapter struct{ n amNotifier }

func (a adapter) Notify(ctx context.Context, n *notify.Notification) (bool, error) {
	retry, err := a.n.Notify(n.Context(ctx), n.Alerts...)
	if err == nil {
		return false, nil
	}
	reason := notify.ReasonOther
	var ewr *amnotify.ErrorWithReason
	if errors.As(err, &ewr) {
		switch ewr.Reason {
		case amnotify.ClientErrorReason, amnotify.AuthErrorReason:
			reason = notify.ReasonClientError
		case amnotify.ServerErrorReason:
			reason = notify.ReasonServerError
		case amnotify.RateLimitedReason:
			reason = notify.ReasonRateLimited
		case amnotify.ContextDeadlineExceededReason, amnotify.ContextCanceledReason:
			reason = notify.ReasonTimeout
		}
	} else if retry {
		reason = notify.ReasonNetwork
	}
	return retry, &notify.Error{Reason: reason, Err: err}
}

// alertmanagerIntegrations builds every integration Klaxon has no package of
// its own for, with Alertmanager's notifier packages.
func alertmanagerIntegrations(rcv *amconfig.Receiver, tmpl *template.Template, log *slog.Logger) ([]notify.Integration, error) {
	var ints []notify.Integration
	var errs []error
	add := func(kind string, i int, sendResolved bool, n amNotifier, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", kind, i, err))
			return
		}
		ints = append(ints, notify.Integration{Name: kind, Index: i, SendResolved: sendResolved, Notifier: adapter{n}})
	}
	l := func(kind string) *slog.Logger { return log.With("integration", kind) }
	for i, c := range rcv.VictorOpsConfigs {
		n, err := victorops.New(c, tmpl, l("victorops"))
		add("victorops", i, c.SendResolved(), n, err)
	}
	for i, c := range rcv.OpsGenieConfigs {
		n, err := opsgenie.New(c, tmpl, l("opsgenie"))
		add("opsgenie", i, c.SendResolved(), n, err)
	}
	for i, c := range rcv.MSTeamsConfigs {
		n, err := msteams.New(c, tmpl, l("msteams"))
		add("msteams", i, c.SendResolved(), n, err)
	}
	for i, c := range rcv.MSTeamsV2Configs {
		n, err := msteamsv2.New(c, tmpl, l("msteamsv2"))
		add("msteamsv2", i, c.SendResolved(), n, err)
	}
	for i, c := range rcv.TelegramConfigs {
		n, err := telegram.New(c, tmpl, l("telegram"))
		add("telegram", i, c.SendResolved(), n, err)
	}
	for i, c := range rcv.DiscordConfigs {
		n, err := discord.New(c, tmpl, l("discord"))
		add("discord", i, c.SendResolved(), n, err)
	}
	for i, c := range rcv.PushoverConfigs {
		n, err := pushover.New(c, tmpl, l("pushover"))
		add("pushover", i, c.SendResolved(), n, err)
	}
	for i, c := range rcv.SNSConfigs {
		n, err := sns.New(c, tmpl, l("sns"))
		add("sns", i, c.SendResolved(), n, err)
	}
	for i, c := range rcv.WechatConfigs {
		n, err := wechat.New(c, tmpl, l("wechat"))
		add("wechat", i, c.SendResolved(), n, err)
	}
	for i, c := range rcv.WebexConfigs {
		n, err := webex.New(c, tmpl, l("webex"))
		add("webex", i, c.SendResolved(), n, err)
	}
	for i, c := range rcv.JiraConfigs {
		n, err := jira.New(c, tmpl, l("jira"))
		add("jira", i, c.SendResolved(), n, err)
	}
	for i, c := range rcv.RocketchatConfigs {
		n, err := rocketchat.New(c, tmpl, l("rocketchat"))
		add("rocketchat", i, c.SendResolved(), n, err)
	}
	for i, c := range rcv.MattermostConfigs {
		n, err := mattermost.New(c, tmpl, l("mattermost"))
		add("mattermost", i, c.SendResolved(), n, err)
	}
	for i, c := range rcv.IncidentioConfigs {
		n, err := incidentio.New(c, tmpl, l("incidentio"))
		add("incidentio", i, c.SendResolved(), n, err)
	}
	return ints, errors.Join(errs...)
}

// isPagerDutyV1 reports whether c uses the Events API v1 (service_key).
func isPagerDutyV1(c *ampagerduty.PagerdutyConfig) bool {
	return c.RoutingKey == "" && c.RoutingKeyFile == ""
}

// Unsupported lists, as messages, the integrations of rcv that Klaxon cannot
// deliver (empty when everything is deliverable), each naming the
// alternative. `klaxonctl rules lint` and the loader report them. Today every
// integration Alertmanager's config package accepts is delivered (ours for
// Slack, email, PagerDuty v2 and webhooks, Alertmanager's own notifiers for
// the rest, PagerDuty's v1 service_key included), so it returns nothing; it
// stays the one place to reject an integration that cannot be delivered.
func Unsupported(rcv *amconfig.Receiver) []string {
	return nil
}
