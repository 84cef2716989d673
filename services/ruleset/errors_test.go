package ruleset

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	amconfig "github.com/prometheus/alertmanager/config"
)

const okAM = `route:
  receiver: a
receivers:
  - name: a
`

// loadOne writes body as rules/t/r.yml and returns the errors of Load, each
// as "line:col: message" without the file.
func loadOne(t *testing.T, body string, opts ...Option) []string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "t"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "t", "r.yml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir, opts...)
	return errorLines(t, err, path)
}

func errorLines(t *testing.T, err error, path string) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var out []string
	var joined interface{ Unwrap() []error }
	errs := []error{err}
	if errors.As(err, &joined) {
		errs = joined.Unwrap()
	}
	for _, e := range errs {
		var re *Error
		if !errors.As(e, &re) {
			t.Fatalf("error without position: %v", e)
		}
		if re.File != path {
			t.Errorf("error names file %q, want %q", re.File, path)
		}
		out = append(out, strings.TrimPrefix(e.Error(), path+":"))
	}
	return out
}

func TestErrorPositions(t *testing.T) {
	cases := []struct {
		name string
		body string
		want []string // exact "line:col: message", in order
	}{
		{"yaml syntax", "route: [\n", []string{"1:1: did not find expected node content"}},
		{"top level not a mapping", "- a\n", []string{"1:1: expected a mapping at the top level"}},
		{"undefined receivers, all of them", `route:
  receiver: a
  routes:
    - receiver: nope
    - receiver: a
      routes:
        - receiver: gone
receivers:
  - name: a
`, []string{
			`4:17: undefined receiver "nope" used in route`,
			`7:21: undefined receiver "gone" used in route`,
		}},
		{"duplicate receiver", okAM + "  - name: a\n", []string{`5:11: notification config name "a" is not unique`}},
		{"undefined time intervals", `route:
  receiver: a
  routes:
    - receiver: a
      mute_time_intervals: [night, weekend]
      active_time_intervals: [office]
receivers:
  - name: a
time_intervals:
  - name: night
    time_intervals:
      - times: [{start_time: "00:00", end_time: "06:00"}]
`, []string{
			`5:36: undefined time interval "weekend" used in route`,
			`6:31: undefined time interval "office" used in route`,
		}},
		{"bad matchers and regexps", `route:
  receiver: a
  routes:
    - receiver: a
      matchers: ['severity="critical"', 'foo=~"("']
    - receiver: a
      match_re: {service: "a(b"}
inhibit_rules:
  - source_matchers: ['a=']
    target_matchers: ['b=="x"']
    equal: [ok, ""]
receivers:
  - name: a
`, []string{
			`5:41: matchers: bad matcher "foo=~\"(\"": error parsing regexp: missing closing ): ` + "`^(?:()$`",
			`7:27: match_re: invalid regexp "a(b": error parsing regexp: missing closing ): ` + "`^(?:a(b)$`",
			`10:23: target_matchers: bad matcher "b==\"x\"": matcher value contains unescaped double quote: ="x"`,
			// UTF-8 names are valid, as in Alertmanager 0.27+ ("1bad" too);
			// the empty name is not.
			`11:17: invalid label name "" in equal list`,
		}},
		{"unknown fields, all of them, with columns", `route:
  receiver: a
  reciever: b
  routes:
    - receiver: a
      grop_by: [x]
receivers:
  - name: a
    webhook_configs:
      - url: http://x/
        sendresolved: true
`, []string{
			`3:3: unknown field "reciever"`,
			`6:7: unknown field "grop_by"`,
			`11:9: unknown field "sendresolved"`,
		}},
		{"root route rules", `route:
  receiver: a
  continue: true
  matchers: ['a="b"']
  group_by: [x, '...', x]
  group_interval: 0s
receivers:
  - name: a
`, []string{
			"3:3: cannot have continue in root route",
			"4:3: root route must not have any matchers",
			"5:17: cannot have wildcard group_by (`...`) and other labels at the same time",
			`5:24: duplicated label "x" in group_by`,
			"6:19: group_interval cannot be zero",
		}},
		{"integration errors in every receiver", `route:
  receiver: a
receivers:
  - name: a
    webhook_configs: [{}]
  - name: b
    webhook_configs:
      - url: ftp://x/
`, []string{
			"4:5: one of url or url_file must be configured",
			`6:5: invalid URL: unsupported scheme "ftp" for URL`,
		}},
		{"no route", "receivers: [{name: a}]\n", []string{"1:1: no route provided in config"}},
		{"policy errors at their values", okAM + `policies:
  - name: p
    match: ['a=~"("', 'ok="1"']
    key: [ns, ""]
    threshold: -1
    window: 1x
    labels: {severity: page}
    bogus: 1
`, []string{
			`7:13: match: bad matcher "a=~\"(\"": error parsing regexp: missing closing ): ` + "`^(?:()$`",
			`8:15: policy "p": key: invalid label name ""`,
			`9:16: policy "p": threshold must be >= 0`,
			`10:13: window: unknown unit "x" in duration "1x"`,
			`11:13: policy "p": labels.alertname is required (it names the derived alert)`,
			`12:5: unknown field "bogus"`,
		}},
		{"policy threshold past what a key can store", okAM + `policies:
  - name: p
    match: ['a="1"']
    threshold: 10001
    window: 1h
    labels: {alertname: P}
`, []string{
			`8:16: policy "p": threshold must be at most 10000 (count larger numbers with an SLO or a Prometheus rule)`,
		}},
		{"duplicate heartbeat and missing interval", okAM + `heartbeats:
  - name: h
    interval: 1m
  - name: h
    grace: -1m
`, []string{
			`8:5: heartbeat "h": interval is required`,
			`8:11: heartbeat "h": duplicate name (first defined at FILE:6:5)`,
			`9:12: grace: not a valid duration string: "-1m"`,
		}},
		{"slo errors", okAM + `slos:
  - name: s
    objective: 100
    period: 10m
    bad_alerts: ['a="b"']
    events: {total: ['x="y"'], bda: []}
    burn_rates:
      - {severity: pager, factor: "-1", long_window: 1h, short_window: 2h}
`, []string{
			`7:16: slo "s": objective "100": must be above 0 and below 100`,
			`8:13: slo "s": period must be between 1h and 366d`,
			`10:13: slo "s": bad_alerts and events are exclusive`,
			`10:32: unknown field "bda"`,
			`12:20: slo "s": burn_rates[0]: severity must be page or ticket`,
			`12:35: slo "s": burn_rates[0]: burn-rate factor "-1": want a positive decimal`,
			`12:72: slo "s": burn_rates[0]: need 0 < short_window <= long_window`,
		}},
		{"too many burn rates", okAM + `slos:
  - name: s
    objective: 99.9
    period: 30d
    bad_alerts: ['a="b"']
    burn_rates: [` + strings.Repeat(`{severity: page, factor: "14.4", long_window: 1h, short_window: 5m}, `, 65) + `]
`, []string{`10:17: slo "s": burn_rates: 65 rules, at most 64`}},
		{"section not a list", okAM + "policies: {a: b}\n", []string{"5:11: policies: expected a list"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := loadOne(t, tc.body)
			for i := range tc.want {
				tc.want[i] = strings.ReplaceAll(tc.want[i], "FILE:", "")
			}
			for i := range got {
				// Positions of earlier items name the file; strip it for the table.
				if j := strings.Index(got[i], "(first defined at "); j >= 0 {
					k := strings.LastIndex(got[i], "r.yml:")
					got[i] = got[i][:j] + "(first defined at " + got[i][k+len("r.yml:"):]
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// The checks only run when Alertmanager rejects a file, and must find an
// error wherever Alertmanager does, so no rejection is reported without a
// position of its own.
func TestValidFilesHaveNoErrors(t *testing.T) {
	body := `global:
  resolve_timeout: 5m
route:
  receiver: a
  group_by: ['...']
  routes:
    - receiver: b
      matchers: ['severity=~"critical|page"']
      mute_time_intervals: [night]
      continue: true
receivers:
  - name: a
  - name: b
    webhook_configs: [{url: "http://127.0.0.1/x", send_resolved: true}]
time_intervals:
  - name: night
    time_intervals:
      - times: [{start_time: "00:00", end_time: "06:00"}]
        weekdays: ['monday:friday']
policies:
  - name: p
    match: ['a="b"']
    key: [ns]
    threshold: 3
    window: 15m
    labels: {alertname: X}
slos:
  - name: s
    objective: 99.9
    period: 30d
    events: {}
    burn_rates: [{severity: page, factor: "14.4", long_window: 1h, short_window: 5m}]
`
	if got := loadOne(t, body); len(got) > 0 {
		t.Fatalf("valid file rejected:\n%s", strings.Join(got, "\n"))
	}
}

func TestReceiverCheckHook(t *testing.T) {
	body := `route:
  receiver: a
receivers:
  - name: a
    webhook_configs: [{url: "http://127.0.0.1/x"}]
    pagerduty_configs:
      - routing_key: k
      - service_key: k
`
	check := func(r *amconfig.Receiver) []string {
		var out []string
		for i, p := range r.PagerdutyConfigs {
			if p.RoutingKey == "" {
				out = append(out, "pagerduty_configs["+string(rune('0'+i))+"]: service_key is not supported")
			}
		}
		return out
	}
	got := loadOne(t, body, WithReceiverCheck(check))
	want := `8:9: receiver "a": pagerduty_configs[1]: service_key is not supported`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := loadOne(t, body); len(got) != 0 {
		t.Fatalf("without the hook: %q", got)
	}
}

// A template file that does not parse fails the load at the rule file's
// `templates:` line, so a reload keeps the last good rules, as Alertmanager
// parses templates on a reload. Parsed only when a notification was built,
// it reloaded as a success and every notification went to the DLQ.
func TestBrokenTemplateFailsTheLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "t"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "t", "slack.tmpl"), []byte(`{{ define "x" }}{{ .Status `), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "t", "r.yml")
	if err := os.WriteFile(path, []byte("templates: ['*.tmpl']\n"+okAM), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	got := errorLines(t, err, path)
	if len(got) != 1 || !strings.HasPrefix(got[0], "1:1: templates: ") {
		t.Fatalf("errors %q, want one at 1:1 naming the templates", got)
	}
}

// Relative credential paths in global.http_config resolve against the rule
// file's dir once, whatever the number of receivers sharing it and even
// with a relative --rules: each receiver's resolving joined the dir again
// (rules/t/rules/t/token), and the file was not found when notifying.
func TestRelativeCredentialsResolveOnce(t *testing.T) {
	tmp := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tmp, "rules", "t"), 0o755); err != nil {
		t.Fatal(err)
	}
	body := `global:
  http_config: {authorization: {credentials_file: token}}
route:
  receiver: a
receivers:
  - name: a
    webhook_configs: [{url: "http://127.0.0.1:1/a"}]
  - name: b
    webhook_configs: [{url: "http://127.0.0.1:1/b"}]
`
	if err := os.WriteFile(filepath.Join(tmp, "rules", "t", "r.yml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(tmp)
	set, err := Load("rules")
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(tmp, "rules", "t", "token")
	for _, r := range set.Tenants["t"].Config.Receivers {
		for _, w := range r.WebhookConfigs {
			if got := w.HTTPConfig.Authorization.CredentialsFile; got != want {
				t.Errorf("receiver %s: credentials_file %q, want %q", r.Name, got, want)
			}
		}
	}
}

// An alertmanager.yml with UTF-8 label names, as Alertmanager 0.27 and later
// load it by default (group_by, matchers), loads here too; it was refused:
// `invalid label name "service.name" in group_by list`.
func TestUTF8LabelNamesLoadAsInAlertmanager(t *testing.T) {
	body := `route:
  receiver: a
  group_by: [service.name]
  routes:
    - matchers: ['"service.name"="checkout"']
      receiver: a
receivers:
  - name: a
`
	if got := loadOne(t, body); len(got) != 0 {
		t.Fatalf("errors %q, want the file loaded as Alertmanager loads it", got)
	}
}
