package deploy

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

var rulesFile = filepath.Join(root, "prometheus", "klaxon-rules.yml")

// TestPrometheusRules: the rule file parses and validates with Prometheus's
// own rulefmt (unknown fields, bad PromQL, bad templates fail), alerts on
// what the deployment needs, and queries only metrics Klaxon exports.
func TestPrometheusRules(t *testing.T) {
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.Default())
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil {
		t.FailNow()
	}
	alerts := map[string]string{}
	var qs []query
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = r.Expr
			qs = append(qs, query{where: "rule " + r.Alert, expr: r.Expr})
		}
	}
	for _, a := range []string{"KlaxonIngestErrors", "KlaxonDeadLetters", "KlaxonReloadFailed", "KlaxonEngineStalled", "KlaxonNotificationFailures", "Watchdog"} {
		if alerts[a] == "" {
			t.Errorf("no alert %s", a)
		}
	}
	if alerts["Watchdog"] != "vector(1)" {
		t.Errorf("Watchdog: %q, want vector(1) (always firing)", alerts["Watchdog"])
	}
	checkQueries(t, qs)
}

// TestPrometheusRulesParserRejects: the parser used above fails on a typo,
// so TestPrometheusRules can fail.
func TestPrometheusRulesParserRejects(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for name, doc := range map[string]string{
		"unknown field": "groups: [{name: g, rules: [{alert: A, expr: up == 0, fore: 5m}]}]",
		"bad PromQL":    "groups: [{name: g, rules: [{alert: A, expr: 'rate(up[5m]'}]}]",
		"bad template":  "groups: [{name: g, rules: [{alert: A, expr: up == 0, annotations: {summary: '{{ $labels.x '}}]}]",
	} {
		if _, errs := rulefmt.Parse([]byte(doc), false, model.UTF8Validation, p, slog.Default()); len(errs) == 0 {
			t.Errorf("%s: parsed without error", name)
		}
	}
}

// TestPrometheusRulesUnitTests runs klaxon-rules.test.yml with promtool:
// each alert fires on the series that mean trouble and not on healthy ones.
func TestPrometheusRulesUnitTests(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found (Debian package prometheus; .ci/run installs it)")
		}
		t.Skip("promtool not found: apt-get install prometheus")
	}
	out, err := exec.Command(promtool, "test", "rules", filepath.Join(root, "prometheus", "klaxon-rules.test.yml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
