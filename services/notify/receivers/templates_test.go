package receivers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/notify/notifytest"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// customTmpl is an operator's template file as an Alertmanager user writes
// it: a title and text of their own, and an override of one of
// Alertmanager's default definitions.
const customTmpl = `{{ define "slack.custom.title" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .CommonLabels.alertname }} on {{ .CommonLabels.instance }}{{ end }}

{{ define "slack.custom.text" -}}
{{ range .Alerts.Firing }}:fire: {{ .Annotations.summary }} ({{ .Labels.severity }}, since {{ .StartsAt.Format "15:04" }} UTC)
{{ end }}{{ range .Alerts.Resolved }}:white_check_mark: {{ .Labels.instance }} recovered
{{ end }}<{{ .ExternalURL }}|klaxon> receiver {{ .Receiver }}
{{- end }}

{{ define "slack.default.title" }}team-b: {{ .GroupLabels.alertname }} ({{ len .Alerts }}){{ end }}
`

// slackHook is an incoming webhook that keeps every posted body.
type slackHook struct {
	mu     sync.Mutex
	bodies []slackBody
}

type slackBody struct {
	Text        string `json:"text"`
	Attachments []struct {
		Fallback string `json:"fallback"`
		Blocks   []struct {
			Type string `json:"type"`
			Text *struct {
				Text string `json:"text"`
			} `json:"text"`
		} `json:"blocks"`
	} `json:"attachments"`
}

func (s *slackHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var b slackBody
	if err := json.Unmarshal(raw, &b); err != nil || len(b.Attachments) != 1 {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, b)
	s.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

// header and sections return the Block Kit header text and section texts.
func (b slackBody) header() string {
	for _, bl := range b.Attachments[0].Blocks {
		if bl.Type == "header" && bl.Text != nil {
			return bl.Text.Text
		}
	}
	return ""
}

func (b slackBody) hasSection(text string) bool {
	for _, bl := range b.Attachments[0].Blocks {
		if bl.Type == "section" && bl.Text != nil && bl.Text.Text == text {
			return true
		}
	}
	return false
}

// TestOperatorTemplateFileIsUsedUnchanged: a .tmpl file listed under
// `templates:` (relative to the rule file, as Alertmanager resolves it) is
// parsed with Alertmanager's template functions and data, and what it
// defines is what Slack receives — for a definition the receiver names and
// for a redefined default.
func TestOperatorTemplateFileIsUsedUnchanged(t *testing.T) {
	hook := &slackHook{}
	srv := httptest.NewServer(hook)
	defer srv.Close()

	dir := filepath.Join(t.TempDir(), "default")
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "templates", "slack.tmpl"), []byte(customTmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	rules := `
templates: ['templates/*.tmpl']
route: {receiver: team-a}
receivers:
  - name: team-a
    slack_configs:
      - api_url: ` + srv.URL + `/services/T0/B0/secret
        channel: '#alerts'
        send_resolved: true
        title: '{{ template "slack.custom.title" . }}'
        text: '{{ template "slack.custom.text" . }}'
        fallback: '{{ template "slack.custom.title" . }}'
  - name: team-b
    slack_configs:
      - api_url: ` + srv.URL + `/services/T0/B1/secret
        channel: '#team-b'
`
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	// Loaded from elsewhere, so a path relative to the working directory
	// would not find the file.
	tn, errs := ruleset.LoadTenant("default", dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	ext, _ := url.Parse("http://klaxon.example:9095")
	b := NewBuilder(ext)

	send := func(receiver string, resolved bool) slackBody {
		t.Helper()
		ints, err := b.Build(tn, receiver, bustest.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(ints) != 1 || ints[0].Name != "slack" {
			t.Fatalf("receiver %s integrations %+v", receiver, ints)
		}
		no := notifytest.Notification(resolved)
		no.Receiver = receiver
		if retry, err := ints[0].Notifier.Notify(no.Context(context.Background()), no); err != nil {
			t.Fatalf("%s resolved=%v: retry=%v err=%v", receiver, resolved, retry, err)
		}
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return hook.bodies[len(hook.bodies)-1]
	}

	// notifytest.Notification: HighLatency on api-1, severity critical,
	// started 11:50 UTC.
	fired := send("team-a", false)
	if got, want := fired.header(), "[FIRING:1] HighLatency on api-1"; got != want {
		t.Errorf("title %q, want %q", got, want)
	}
	if want := ":fire: p99 latency above 2s (critical, since 11:50 UTC)\n<http://klaxon.example:9095|klaxon> receiver team-a"; !fired.hasSection(want) {
		t.Errorf("no section with the custom text %q in %+v", want, fired.Attachments[0].Blocks)
	}
	if fired.Text != "[FIRING:1] HighLatency on api-1" || fired.Attachments[0].Fallback != fired.Text {
		t.Errorf("fallback %q / text %q, want the custom title", fired.Attachments[0].Fallback, fired.Text)
	}

	resolved := send("team-a", true)
	if got, want := resolved.header(), "[RESOLVED] HighLatency on api-1"; got != want {
		t.Errorf("resolved title %q, want %q", got, want)
	}
	if want := ":white_check_mark: api-1 recovered\n<http://klaxon.example:9095|klaxon> receiver team-a"; !resolved.hasSection(want) {
		t.Errorf("no section with the resolved text %q in %+v", want, resolved.Attachments[0].Blocks)
	}

	// team-b sets no title: Alertmanager's default title template, which the
	// operator's file redefines.
	if got, want := send("team-b", false).header(), "team-b: HighLatency (1)"; got != want {
		t.Errorf("team-b title %q, want %q (the redefined slack.default.title)", got, want)
	}
	for _, body := range hook.bodies {
		if strings.Contains(body.header(), "{{") {
			t.Errorf("unrendered template in %q", body.header())
		}
	}
}
