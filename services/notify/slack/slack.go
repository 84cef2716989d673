// Package slack posts Block Kit messages to Slack from an Alertmanager
// slack_config. With a bot token (app_token) it uses chat.postMessage and, on
// later notifications of the same group, chat.update of the original message
// (channel + ts kept in JetStream KV), so a resolve turns the message green
// instead of adding a second one. With an incoming-webhook URL (api_url and
// no token) it posts the same message to the webhook.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"
	commoncfg "github.com/prometheus/common/config"
	"github.com/slack-go/slack"

	"github.com/klaxon-sh/klaxon/services/notify"
)

// DefaultAPIURL is Slack's Web API root.
const DefaultAPIURL = "https://slack.com/api/"

// Notifier sends Slack messages.
type Notifier struct {
	conf   *amconfig.SlackConfig
	tmpl   *template.Template
	log    *slog.Logger
	http   *http.Client
	api    *slack.Client // nil in incoming-webhook mode
	refs   RefStore      // nil: never update, always post
	prefix string
}

// Option configures a Notifier.
type Option func(*Notifier)

// WithRefs keeps the channel and ts of posted messages in store under keys
// derived from scope (tenant/receiver/index) and the group key, so later
// notifications of a group update its message instead of posting again.
func WithRefs(store RefStore, scope string) Option {
	return func(n *Notifier) { n.refs, n.prefix = store, scope }
}

// WithHTTPClient replaces the client built from http_config (tests).
func WithHTTPClient(c *http.Client) Option { return func(n *Notifier) { n.http = c } }

// New builds a notifier from an Alertmanager slack_config.
func New(conf *amconfig.SlackConfig, tmpl *template.Template, log *slog.Logger, opts ...Option) (*Notifier, error) {
	n := &Notifier{conf: conf, tmpl: tmpl, log: log}
	for _, o := range opts {
		o(n)
	}
	if n.http == nil {
		hc := commoncfg.DefaultHTTPClientConfig
		if conf.HTTPConfig != nil {
			hc = *conf.HTTPConfig
		}
		c, err := commoncfg.NewClientFromConfig(hc, "slack")
		if err != nil {
			return nil, fmt.Errorf("slack http_config: %w", err)
		}
		n.http = c
	}
	token, err := secret(string(conf.AppToken), conf.AppTokenFile)
	if err != nil {
		return nil, fmt.Errorf("slack app_token_file: %w", err)
	}
	if token == "" {
		if conf.APIURL == nil && conf.APIURLFile == "" {
			return nil, errors.New("slack: neither app_token (bot token) nor api_url (incoming webhook) is set")
		}
		return n, nil
	}
	n.api = slack.New(token, slack.OptionHTTPClient(n.http), slack.OptionAPIURL(apiRoot(conf)))
	return n, nil
}

// apiRoot is the Web API root: api_url (or app_url) with any method name
// (Alertmanager configs spell it https://slack.com/api/chat.postMessage)
// stripped, so the same root serves chat.postMessage and chat.update.
func apiRoot(conf *amconfig.SlackConfig) string {
	raw := ""
	switch {
	case conf.APIURL != nil && conf.APIURL.URL != nil:
		raw = conf.APIURL.String()
	case conf.AppURL != nil && conf.AppURL.URL != nil:
		raw = conf.AppURL.String()
	default:
		return DefaultAPIURL
	}
	if i := strings.LastIndex(raw, "/"); i >= 0 && strings.HasPrefix(raw[i+1:], "chat.") {
		raw = raw[:i+1]
	}
	if !strings.HasSuffix(raw, "/") {
		raw += "/"
	}
	return raw
}

func secret(inline, file string) (string, error) {
	if inline != "" || file == "" {
		return inline, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// Notify implements notify.Notifier.
func (n *Notifier) Notify(ctx context.Context, no *notify.Notification) (bool, error) {
	msg, err := n.render(no)
	if err != nil {
		return false, err
	}
	if n.conf.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.conf.Timeout)
		defer cancel()
	}
	if n.api == nil {
		return n.postWebhook(ctx, msg)
	}
	return n.postOrUpdate(ctx, no, msg)
}

func (n *Notifier) postWebhook(ctx context.Context, msg *message) (bool, error) {
	url, err := secret(n.conf.APIURL.String(), n.conf.APIURLFile)
	if n.conf.APIURL == nil {
		url, err = secret("", n.conf.APIURLFile)
	}
	if err != nil {
		return false, &notify.Error{Reason: notify.ReasonConfig, Err: fmt.Errorf("read api_url_file: %w", err)}
	}
	wm := &slack.WebhookMessage{
		Channel: msg.Channel, Username: msg.Username, IconEmoji: msg.IconEmoji, IconURL: msg.IconURL,
		Text: msg.Text, Attachments: []slack.Attachment{msg.Attachment},
	}
	if err := slack.PostWebhookCustomHTTPContext(ctx, url, n.http, wm); err != nil {
		retry, cerr := classify(err)
		return retry, redact(cerr, url)
	}
	return false, nil
}

// postOrUpdate posts a firing notification as a new message, and updates
// the group's last posted message with its resolve. A firing one is never
// an update: editing a message notifies no one, so a group's new alert, or
// its repeat_interval reminder, edited far up the channel went unseen; and
// with send_resolved false (Alertmanager's default for Slack) the skipped
// resolve left the reference, so the group firing again days later only
// rewrote its old message.
func (n *Notifier) postOrUpdate(ctx context.Context, no *notify.Notification, msg *message) (bool, error) {
	key := n.refKey(no)
	opts := msg.options()
	if !no.Resolved() {
		channel, ts, err := n.api.PostMessageContext(ctx, msg.Channel, opts...)
		if err != nil {
			return classify(err)
		}
		n.saveRef(ctx, key, ref{Channel: channel, TS: ts})
		return false, nil
	}
	if ref, ok := n.loadRef(ctx, key); ok {
		_, _, _, err := n.api.UpdateMessageContext(ctx, ref.Channel, ref.TS, opts...)
		switch {
		case err == nil:
			n.deleteRef(ctx, key) // the group is over
			return false, nil
		case isSlackErr(err, "message_not_found", "cant_update_message", "edit_window_closed", "channel_not_found"):
			n.log.Info("slack message cannot be updated; posting a new one", "err", err)
		default:
			return classify(err)
		}
	}
	if _, _, err := n.api.PostMessageContext(ctx, msg.Channel, opts...); err != nil {
		return classify(err)
	}
	return false, nil
}

// classify turns slack-go errors into retry decisions: rate limits (HTTP 429
// or "ratelimited") retry after Slack's Retry-After, 5xx and Slack's
// transient errors retry, everything else (bad token, unknown channel, bad
// blocks) does not.
func classify(err error) (bool, error) {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return true, &notify.Error{Reason: notify.ReasonRateLimited, Err: err, RetryAfter: rl.RetryAfter}
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		switch {
		case sc.Code == http.StatusTooManyRequests:
			return true, &notify.Error{Reason: notify.ReasonRateLimited, Err: err}
		case sc.Code == http.StatusRequestTimeout:
			return true, &notify.Error{Reason: notify.ReasonTimeout, Err: err}
		case sc.Code/100 == 5:
			return true, &notify.Error{Reason: notify.ReasonServerError, Err: err}
		}
		return false, &notify.Error{Reason: notify.ReasonClientError, Err: err}
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch se.Err {
		case "ratelimited", "rate_limited":
			return true, &notify.Error{Reason: notify.ReasonRateLimited, Err: err}
		case "internal_error", "fatal_error", "service_unavailable", "request_timeout":
			return true, &notify.Error{Reason: notify.ReasonServerError, Err: err}
		}
		return false, &notify.Error{Reason: notify.ReasonClientError, Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true, &notify.Error{Reason: notify.ReasonTimeout, Err: err}
	}
	return true, &notify.Error{Reason: notify.ReasonNetwork, Err: err}
}

func isSlackErr(err error, codes ...string) bool {
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range codes {
		if se.Err == c {
			return true
		}
	}
	return false
}

// redact drops the webhook URL (it is the credential) from an error.
func redact(err error, url string) error {
	var ne *notify.Error
	if url == "" || !strings.Contains(err.Error(), url) || !errors.As(err, &ne) {
		return err
	}
	return &notify.Error{Reason: ne.Reason, RetryAfter: ne.RetryAfter,
		Err: errors.New(strings.ReplaceAll(ne.Err.Error(), url, "<redacted webhook url>"))}
}
