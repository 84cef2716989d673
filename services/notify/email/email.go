// Package email sends notifications over SMTP (STARTTLS or implicit TLS,
// AUTH PLAIN/LOGIN/CRAM-MD5) from an Alertmanager email_config, as a
// multipart/alternative message with an HTML and a plain-text part rendered
// with Alertmanager's email templates or the operator's.
package email

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"sort"
	"strconv"
	"strings"

	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"
	commoncfg "github.com/prometheus/common/config"
	mail "github.com/wneessen/go-mail"

	"github.com/klaxon-sh/klaxon/services/notify"
)

// defaultText is the plain-text part when the config has no `text`:
// Alertmanager sends none, which leaves text-only clients with nothing.
const defaultText = `{{ template "__subject" . }}
{{ range .Alerts }}
[{{ .Status | toUpper }}] {{ .Labels.alertname }}
{{- with .Annotations.summary }}
  {{ . }}{{ end }}
{{- with .Annotations.description }}
  {{ . }}{{ end }}
  Labels:{{ range .Labels.SortedPairs }} {{ .Name }}={{ .Value }}{{ end }}
{{- with .GeneratorURL }}
  Source: {{ . }}{{ end }}
{{- with .Annotations.runbook_url }}
  Runbook: {{ . }}{{ end }}
{{ end }}
View in Klaxon: {{ template "__alertmanagerURL" . }}
`

// Notifier sends email.
type Notifier struct {
	conf *amconfig.EmailConfig
	tmpl *template.Template
	log  *slog.Logger
}

// New builds a notifier from an Alertmanager email_config.
func New(conf *amconfig.EmailConfig, tmpl *template.Template, log *slog.Logger) (*Notifier, error) {
	if conf.Smarthost.Host == "" || conf.Smarthost.Port == "" {
		return nil, errors.New("email: smarthost (host:port) is required")
	}
	if conf.To == "" {
		return nil, errors.New("email: to is required")
	}
	return &Notifier{conf: conf, tmpl: tmpl, log: log}, nil
}

// Notify implements notify.Notifier.
func (n *Notifier) Notify(ctx context.Context, no *notify.Notification) (bool, error) {
	msg, err := n.message(no)
	if err != nil {
		return false, err
	}
	client, err := n.client()
	if err != nil {
		return false, &notify.Error{Reason: notify.ReasonConfig, Err: err}
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return classify(err)
	}
	return false, nil
}

// classify: SMTP 4xx replies are temporary (retry), 5xx permanent; failures
// to connect or time-outs are retried.
func classify(err error) (bool, error) {
	var se *mail.SendError
	if errors.As(err, &se) {
		code := se.ErrorCode()
		switch {
		case code >= 500:
			return false, &notify.Error{Reason: notify.ReasonClientError, Err: err}
		case code >= 400 || se.IsTemp():
			return true, &notify.Error{Reason: notify.ReasonServerError, Err: err}
		}
	}
	// AUTH and other failures before sending carry the server's reply.
	var te *textproto.Error
	if errors.As(err, &te) {
		if te.Code >= 500 {
			return false, &notify.Error{Reason: notify.ReasonClientError, Err: err}
		}
		return true, &notify.Error{Reason: notify.ReasonServerError, Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true, &notify.Error{Reason: notify.ReasonTimeout, Err: err}
	}
	return true, &notify.Error{Reason: notify.ReasonNetwork, Err: err}
}

// implicitTLS mirrors Alertmanager: force_implicit_tls decides, else port 465.
func (n *Notifier) implicitTLS() bool {
	if n.conf.ForceImplicitTLS != nil {
		return *n.conf.ForceImplicitTLS
	}
	return n.conf.Smarthost.Port == "465"
}

func (n *Notifier) client() (*mail.Client, error) {
	c := n.conf
	port, err := strconv.Atoi(c.Smarthost.Port)
	if err != nil {
		return nil, fmt.Errorf("smarthost port %q: %w", c.Smarthost.Port, err)
	}
	tlsCfg := &commoncfg.TLSConfig{}
	if c.TLSConfig != nil {
		tlsCfg = c.TLSConfig
	}
	tc, err := commoncfg.NewTLSConfig(tlsCfg)
	if err != nil {
		return nil, fmt.Errorf("tls_config: %w", err)
	}
	if tc.ServerName == "" {
		tc.ServerName = c.Smarthost.Host
	}
	opts := []mail.Option{mail.WithPort(port), mail.WithTLSConfig(tc)}
	if c.Hello != "" {
		opts = append(opts, mail.WithHELO(c.Hello))
	}
	switch {
	case n.implicitTLS():
		opts = append(opts, mail.WithSSL())
	case c.RequireTLS == nil || *c.RequireTLS:
		// Alertmanager's default (smtp_require_tls: true): STARTTLS or fail.
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if c.AuthUsername != "" {
		secret, err := readSecret(string(c.AuthSecret), c.AuthSecretFile)
		if err != nil {
			return nil, fmt.Errorf("auth_secret_file: %w", err)
		}
		password, err := readSecret(string(c.AuthPassword), c.AuthPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("auth_password_file: %w", err)
		}
		opts = append(opts, mail.WithUsername(c.AuthUsername))
		switch {
		case secret != "":
			opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthCramMD5), mail.WithPassword(secret))
		case password != "":
			// The first mechanism the server offers, in Alertmanager's order.
			opts = append(opts, mail.WithOpportunisticSMTPAuth(mail.SMTPAuthPlain, mail.SMTPAuthLogin), mail.WithPassword(password))
		}
	}
	return mail.NewClient(c.Smarthost.Host, opts...)
}

func readSecret(inline, file string) (string, error) {
	if inline != "" || file == "" {
		return inline, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// message renders the mail: headers (Subject, To, From and the config's,
// templated), the HTML part and the plain-text part.
func (n *Notifier) message(no *notify.Notification) (*mail.Msg, error) {
	data := no.Data(n.tmpl)
	var terr error
	text := func(s string) string {
		if terr != nil || s == "" {
			return ""
		}
		out, err := n.tmpl.ExecuteTextString(s, data)
		if err != nil {
			terr = fmt.Errorf("template %q: %w", s, err)
		}
		return out
	}
	html := func(s string) string {
		if terr != nil || s == "" {
			return ""
		}
		out, err := n.tmpl.ExecuteHTMLString(s, data)
		if err != nil {
			terr = fmt.Errorf("template %q: %w", s, err)
		}
		return out
	}
	headers := map[string]string{}
	for k, v := range n.conf.Headers {
		headers[k] = v
	}
	setDefault := func(k, v string) {
		if _, ok := headers[k]; !ok {
			headers[k] = v
		}
	}
	setDefault("Subject", amconfig.DefaultEmailSubject)
	setDefault("To", n.conf.To)
	setDefault("From", n.conf.From)
	rendered := map[string]string{}
	for k, v := range headers {
		rendered[k] = strings.TrimSpace(text(v))
	}
	htmlBody := html(or(n.conf.HTML, amconfig.DefaultEmailConfig.HTML))
	textBody := text(or(n.conf.Text, defaultText))
	if terr != nil {
		return nil, &notify.Error{Reason: notify.ReasonTemplate, Err: terr}
	}

	m := mail.NewMsg()
	if err := m.From(rendered["From"]); err != nil {
		return nil, &notify.Error{Reason: notify.ReasonConfig, Err: fmt.Errorf("from %q: %w", rendered["From"], err)}
	}
	if err := m.ToFromString(rendered["To"]); err != nil {
		return nil, &notify.Error{Reason: notify.ReasonConfig, Err: fmt.Errorf("to %q: %w", rendered["To"], err)}
	}
	m.Subject(rendered["Subject"])
	keys := make([]string, 0, len(rendered))
	for k := range rendered {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case "From", "To", "Subject":
			continue
		}
		m.SetGenHeader(mail.Header(k), rendered[k])
	}
	m.SetDateWithValue(no.Now)
	m.SetMessageIDWithValue(messageID(no, n.conf.From))
	m.SetGenHeader(mail.Header("X-Klaxon-Status"), string(no.Status()))
	switch {
	case textBody != "" && htmlBody != "":
		m.SetBodyString(mail.TypeTextPlain, textBody)
		m.AddAlternativeString(mail.TypeTextHTML, htmlBody)
	case htmlBody != "":
		m.SetBodyString(mail.TypeTextHTML, htmlBody)
	default:
		m.SetBodyString(mail.TypeTextPlain, textBody)
	}
	return m, nil
}

// messageID is stable per notification, so a resend after a crash between
// SMTP and the ack is recognisable as the same mail.
func messageID(no *notify.Notification, from string) string {
	domain := "klaxon.local"
	if i := strings.LastIndex(from, "@"); i >= 0 {
		domain = strings.Trim(from[i+1:], "> ")
	}
	if _, _, err := net.SplitHostPort(domain); err == nil {
		domain = "klaxon.local"
	}
	return fmt.Sprintf("%s.%s@%s", sanitize(no.IdempotencyKey), no.Now.UTC().Format("20060102150405"), domain)
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
