package slack

import (
	"fmt"
	"net/url"
	"sort"
	"strings"

	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"
	"github.com/slack-go/slack"

	"github.com/klaxon-sh/klaxon/services/notify"
)

// Block Kit limits (https://api.slack.com/reference/block-kit/blocks).
const (
	maxHeader     = 150
	maxSection    = 3000
	maxField      = 2000
	maxButtonText = 75
	maxURL        = 3000
	maxListed     = 10 // alerts listed in the default text
)

// message is a rendered notification, the same for the Web API and
// incoming webhooks.
type message struct {
	Channel    string           `json:"channel,omitempty"`
	Username   string           `json:"username,omitempty"`
	IconEmoji  string           `json:"icon_emoji,omitempty"`
	IconURL    string           `json:"icon_url,omitempty"`
	LinkNames  bool             `json:"link_names,omitempty"`
	Text       string           `json:"text"`
	Attachment slack.Attachment `json:"attachment"`
}

func (m *message) options() []slack.MsgOption {
	opts := []slack.MsgOption{
		slack.MsgOptionText(m.Text, false),
		slack.MsgOptionAttachments(m.Attachment),
	}
	if m.Username != "" {
		opts = append(opts, slack.MsgOptionUsername(m.Username))
	}
	if m.IconEmoji != "" {
		opts = append(opts, slack.MsgOptionIconEmoji(m.IconEmoji))
	}
	if m.IconURL != "" {
		opts = append(opts, slack.MsgOptionIconURL(m.IconURL))
	}
	if m.LinkNames {
		opts = append(opts, slack.MsgOptionLinkNames(true))
	}
	return opts
}

// or returns v, or Alertmanager's default when a config was built in code.
func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// render templates every slack_config field with the operator's templates
// and lays the result out as Block Kit inside a coloured attachment: a header
// (title), status and severity, the text (or a summary of each alert), the
// common labels, and buttons to the runbook, dashboard, source and a
// pre-filled silence.
func (n *Notifier) render(no *notify.Notification) (*message, error) {
	data := no.Data(n.tmpl)
	d := amconfig.DefaultSlackConfig
	c := n.conf
	var terr error
	tmpl := func(s string) string {
		if terr != nil || s == "" {
			return ""
		}
		out, err := n.tmpl.ExecuteTextString(s, data)
		if err != nil {
			terr = fmt.Errorf("template %q: %w", s, err)
		}
		return strings.TrimSpace(out)
	}
	title := tmpl(or(c.Title, d.Title))
	text := tmpl(or(c.Text, d.Text))
	if text == "" {
		text = defaultText(data)
	}
	m := &message{
		Channel:   tmpl(c.Channel),
		Username:  tmpl(or(c.Username, d.Username)),
		IconEmoji: tmpl(or(c.IconEmoji, d.IconEmoji)),
		IconURL:   tmpl(or(c.IconURL, d.IconURL)),
		LinkNames: c.LinkNames,
	}
	fallback := tmpl(or(c.Fallback, d.Fallback))
	m.Text = or(tmpl(c.MessageText), fallback)

	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, clip(title, maxHeader), true, false)),
		slack.NewSectionBlock(nil, []*slack.TextBlockObject{
			mrkdwn("*Status*\n" + statusText(data)),
			mrkdwn("*Severity*\n" + or(data.CommonLabels["severity"], "none")),
		}, nil),
	}
	if pre := tmpl(or(c.Pretext, d.Pretext)); pre != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(clip(pre, maxSection)), nil, nil))
	}
	blocks = append(blocks, slack.NewSectionBlock(mrkdwn(clip(text, maxSection)), nil, nil))
	var fields []*slack.TextBlockObject
	for _, f := range c.Fields {
		if t, v := tmpl(f.Title), tmpl(f.Value); t != "" || v != "" {
			fields = append(fields, mrkdwn(clip("*"+t+"*\n"+v, maxField)))
		}
	}
	if len(fields) > 10 {
		fields = fields[:10]
	}
	if len(fields) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
	}
	if labels := labelText(data.CommonLabels); labels != "" {
		blocks = append(blocks, slack.NewContextBlock("labels", mrkdwn(clip(labels, maxSection))))
	}
	if btns := n.buttons(data, tmpl(or(c.TitleLink, d.TitleLink))); len(btns) > 0 {
		blocks = append(blocks, slack.NewActionBlock("links", btns...))
	}
	if footer := tmpl(or(c.Footer, d.Footer)); footer != "" {
		blocks = append(blocks, slack.NewContextBlock("footer", mrkdwn(clip(footer, maxSection))))
	}
	m.Attachment = slack.Attachment{
		Color:    tmpl(or(c.Color, d.Color)),
		Fallback: fallback,
		Blocks:   slack.Blocks{BlockSet: blocks},
	}
	if terr != nil {
		return nil, &notify.Error{Reason: notify.ReasonTemplate, Err: terr}
	}
	return m, nil
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

func statusText(d *template.Data) string {
	if d.Status == "resolved" {
		return ":large_green_circle: Resolved"
	}
	return fmt.Sprintf(":red_circle: Firing (%d)", len(d.Alerts.Firing()))
}

// defaultText lists each alert's summary and description: Alertmanager's
// slack.default.text is empty, which makes a bare message.
func defaultText(d *template.Data) string {
	var sb strings.Builder
	for i, a := range d.Alerts {
		if i == maxListed {
			fmt.Fprintf(&sb, "… and %d more\n", len(d.Alerts)-maxListed)
			break
		}
		summary := or(a.Annotations["summary"], or(a.Annotations["message"], a.Labels["alertname"]))
		icon := ":red_circle:"
		if a.Status == "resolved" {
			icon = ":large_green_circle:"
		}
		fmt.Fprintf(&sb, "%s *%s*", icon, summary)
		if desc := a.Annotations["description"]; desc != "" {
			sb.WriteString(" — " + desc)
		}
		sb.WriteByte('\n')
	}
	return strings.TrimSpace(sb.String())
}

func labelText(ls template.KV) string {
	keys := make([]string, 0, len(ls))
	for k := range ls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, "`"+k+"="+ls[k]+"`")
	}
	return strings.Join(parts, " ")
}

// buttons link to what a responder needs: runbook and dashboard from the
// annotations of the first alert that has them, the alert source, a silence
// form pre-filled with the group's common labels, and the title link.
func (n *Notifier) buttons(d *template.Data, titleLink string) []slack.BlockElement {
	var out []slack.BlockElement
	add := func(id, label, link string, style slack.Style) {
		if link == "" || len(link) > maxURL {
			return
		}
		if u, err := url.Parse(link); err != nil || u.Scheme == "" {
			return
		}
		b := slack.NewButtonBlockElement(id, id, slack.NewTextBlockObject(slack.PlainTextType, clip(label, maxButtonText), true, false))
		b.URL = link
		b.Style = style
		out = append(out, b)
	}
	first := func(key string) string {
		if v := d.CommonAnnotations[key]; v != "" {
			return v
		}
		for _, a := range d.Alerts {
			if v := a.Annotations[key]; v != "" {
				return v
			}
		}
		return ""
	}
	add("runbook", "Runbook", first("runbook_url"), slack.StylePrimary)
	add("dashboard", "Dashboard", first("dashboard_url"), "")
	if len(d.Alerts) > 0 {
		add("source", "Source", d.Alerts[0].GeneratorURL, "")
	}
	if d.Status == "firing" && d.ExternalURL != "" {
		add("silence", "Silence", silenceURL(d), "")
	}
	if titleLink != "" {
		add("open", "Open in Klaxon", titleLink, "")
	}
	return out
}

// silenceURL is Alertmanager's silence form, filtered by the common labels.
func silenceURL(d *template.Data) string {
	keys := d.CommonLabels.SortedPairs()
	parts := make([]string, 0, len(keys))
	for _, p := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", p.Name, p.Value))
	}
	return strings.TrimSuffix(d.ExternalURL, "/") + "/#/silences/new?filter=" + url.QueryEscape("{"+strings.Join(parts, ", ")+"}")
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
