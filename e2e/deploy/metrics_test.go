package deploy

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// idle lists metrics Klaxon registers but the short run in exported does
// not make appear (vectors appear once a label set is used); each entry says
// why. Keep it short: prefer exercising the component in exported.
var idle = map[string]string{
	"klaxon_policy_kv_conflicts_total": "two engine replicas updating one window at once; needs a race between replicas",
	"klaxon_notifications_suppressed_total": "a redelivered notification the notification log already holds (a notifier crashed " +
		"between sending and acknowledging); the engine itself drops resolved notifications for receivers without send_resolved",
}

// pending lists metrics another part of Klaxon is about to export. Empty:
// the SLO engine exports klaxon_slo_error_budget_remaining_ratio and
// klaxon_slo_burn_rate (services/slo/runner).
var pending = map[string]string{}

// scrapeLabels adds the target labels Prometheus attaches to every scraped
// series; queries may group by them although /metrics does not show them.
var scrapeLabels = []string{"job", "instance", "namespace", "pod", "service", "container", "le", "quantile"}

var (
	exportedOnce sync.Once
	exportedSet  map[string]map[string]bool
	exportedErr  error
)

// exported starts a real bin/klaxon whose rules exercise every component
// (routing, a failing receiver into the DLQ, a window
// policy, heartbeats going stale, an SLO burning), drives traffic through
// it, and returns each exported metric family with the label names seen on
// it. Shared by the rules and dashboard tests.
func exported(t *testing.T) map[string]map[string]bool {
	t.Helper()
	exportedOnce.Do(func() { exportedSet, exportedErr = scrape(t, klaxonMetrics(t, allQueries(t))) })
	if exportedErr != nil {
		t.Fatal(exportedErr)
	}
	return exportedSet
}

func scrape(t *testing.T, wanted []string) (map[string]map[string]bool, error) {
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": fmt.Sprintf(`
route:
  receiver: sink
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  routes:
    - {receiver: broken, matchers: ['alertname="Broken"']}
receivers:
  - name: sink
    webhook_configs: [{url: %q}]
  - name: broken
    webhook_configs: [{url: "http://127.0.0.1:1/closed"}]
policies:
  - {name: p, match: ['alertname="X"'], threshold: 0, window: 1h, labels: {alertname: PX}}
heartbeats:
  - {name: hb, interval: 1h}
  - {name: stale, interval: 1s, grace: 1s}
slos:
  - {name: s, objective: 99.9, period: 30d, events: {}}
`, sink.URL()+"/h")})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Extra: []string{
		"--slo.evaluation-interval=100ms", "--notify.max-deliver=1", "--notify.attempts=1", "--notify.min-backoff=10ms",
	}})
	x := `[{"labels":{"alertname":"X","n":"1"},"startsAt":"` + time.Now().UTC().Format(time.RFC3339) + `"}]`
	for _, p := range []struct{ path, body string }{
		{"/api/v2/alerts", x},
		{"/api/v2/alerts", x}, // the same alert again: a JetStream duplicate
		{"/api/v2/alerts", `[{"labels":{"alertname":"Broken"}}]`},
		{"/api/v2/alerts", `not json`}, // a 400 for the code label
		{"/api/v1/heartbeat/hb", ``},
		{"/api/v1/slo/s/events", `{"good":0,"total":100}`},
	} {
		k.Post(p.path, p.body)
	}
	harness.Eventually(t, 10*time.Second, "X notified", func() bool { return len(sink.Messages()) > 0 })

	// Poll until every wanted family is there (or the deadline: then the
	// callers report what is missing).
	var out map[string]map[string]bool
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		if out, err = metricsOf(k.URL() + "/metrics"); err != nil {
			return nil, err
		}
		missing := slices.DeleteFunc(slices.Clone(wanted), func(m string) bool { _, ok := out[m]; return ok || idle[m] != "" || pending[m] != "" })
		if len(missing) == 0 || time.Now().After(deadline) {
			t.Logf("families still missing at the end of the run: %v", missing)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return out, nil
}

// metricsOf scrapes url: family name (without the histogram suffixes) to the
// label names its samples carry.
func metricsOf(url string) (map[string]map[string]bool, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	out := map[string]map[string]bool{}
	for name, f := range fams {
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		out[name] = labels
	}
	return out, nil
}

// query is one PromQL expression and where it comes from.
type query struct{ where, expr string }

// klaxonMetrics parses each query with the Prometheus parser and returns the
// klaxon_* metric names it selects (histogram series mapped to their
// family), failing on a query that does not parse.
func klaxonMetrics(t *testing.T, qs []query) []string {
	t.Helper()
	var out []string
	for _, q := range qs {
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(q.expr)
		if err != nil {
			t.Errorf("%s: %v\n%s", q.where, err, q.expr)
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && strings.HasPrefix(vs.Name, "klaxon_") && !slices.Contains(out, family(vs.Name)) {
				out = append(out, family(vs.Name))
			}
			return nil
		})
	}
	slices.Sort(out)
	return out
}

func family(name string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, s); ok && !strings.HasSuffix(name, "_total") {
			return base
		}
	}
	return name
}

// checkQueries: every klaxon_* metric a query selects is exported by the
// running Klaxon (or listed in idle/pending with a reason), every label it
// matches on or aggregates by is a label of that metric, and the queries
// name at least one Klaxon metric.
func checkQueries(t *testing.T, qs []query) {
	t.Helper()
	names := klaxonMetrics(t, qs)
	if len(names) == 0 {
		t.Fatal("the queries name no klaxon_* metric")
	}
	got := exported(t)
	for _, name := range names {
		if _, ok := got[name]; !ok && idle[name] == "" && pending[name] == "" {
			t.Errorf("queries select %s, which Klaxon does not export", name)
		}
	}
	for _, q := range qs {
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(q.expr)
		if err != nil {
			continue // reported above
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			switch n := n.(type) {
			case *parser.VectorSelector:
				for _, m := range n.LabelMatchers {
					checkLabel(t, q, got, []string{family(n.Name)}, m.Name)
				}
			case *parser.AggregateExpr:
				if n.Without {
					return nil
				}
				var inner []string
				parser.Inspect(n.Expr, func(c parser.Node, _ []parser.Node) error {
					if vs, ok := c.(*parser.VectorSelector); ok {
						inner = append(inner, family(vs.Name))
					}
					return nil
				})
				for _, l := range n.Grouping {
					checkLabel(t, q, got, inner, l)
				}
			}
			return nil
		})
	}
}

// checkLabel: label is on at least one of the metrics (those Klaxon exports
// and was seen using), or is a target label Prometheus adds.
func checkLabel(t *testing.T, q query, got map[string]map[string]bool, metrics []string, label string) {
	t.Helper()
	if label == model.MetricNameLabel || slices.Contains(scrapeLabels, label) {
		return
	}
	known := false
	for _, m := range metrics {
		labels, ok := got[m]
		if !ok || !strings.HasPrefix(m, "klaxon_") {
			return // not seen (idle, pending, not ours): nothing to compare with
		}
		known = known || labels[label]
	}
	if !known {
		t.Errorf("%s: label %q is on none of %v\n%s", q.where, label, metrics, q.expr)
	}
}

// allQueries reads the queries of the rules and the dashboard, so that the
// one run in exported waits for the metrics of both.
func allQueries(t *testing.T) []query {
	t.Helper()
	var qs []query
	groups, _ := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.Default())
	if groups != nil {
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				qs = append(qs, query{where: "rule " + r.Alert, expr: r.Expr})
			}
		}
	}
	var d struct {
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if b, err := os.ReadFile(dashboardFile); err == nil && json.Unmarshal(b, &d) == nil {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				qs = append(qs, query{where: "dashboard", expr: tg.Expr})
			}
		}
	}
	return qs
}
