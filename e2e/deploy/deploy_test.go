// Package deploy checks deploy/: every kustomize overlay renders offline and
// decodes strictly into the Kubernetes API types, the Prometheus rules parse,
// and every metric the Grafana dashboard queries is one Klaxon exports.
package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

var root = filepath.Join("..", "..", "deploy")

// render builds an overlay the way `kubectl kustomize` does, offline.
func render(t *testing.T, dir string) [][]byte {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	var out [][]byte
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// strict decodes into typed objects; unknown fields are errors.
func strict(t *testing.T, doc []byte) any {
	t.Helper()
	var meta struct{ Kind, APIVersion string }
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		t.Fatal(err)
	}
	var obj any
	switch meta.Kind {
	case "Deployment":
		obj = &appsv1.Deployment{}
	case "StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "Service":
		obj = &corev1.Service{}
	case "ConfigMap":
		obj = &corev1.ConfigMap{}
	case "ServiceAccount":
		obj = &corev1.ServiceAccount{}
	case "PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	case "NetworkPolicy":
		obj = &networkingv1.NetworkPolicy{}
	case "ServiceMonitor":
		obj = &serviceMonitor{}
	default:
		t.Fatalf("unexpected kind %s", meta.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		t.Fatalf("%s does not decode strictly: %v\n%s", meta.Kind, err, doc)
	}
	return obj
}

// serviceMonitor is the subset of monitoring.coreos.com/v1 used here (no Go
// type in k8s.io/api); strict decoding still rejects anything else.
type serviceMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// runFlags lists the flags `klaxon run` really has.
func runFlags(t *testing.T) map[string]bool {
	out, _ := exec.Command(harness.Binary(t, "klaxon"), "run", "--help").CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`--([a-z][a-z0-9.\-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["target"] || !flags["nats"] {
		t.Fatalf("could not read klaxon run --help:\n%s", out)
	}
	return flags
}

func TestOverlaysRenderAndDecodeStrictly(t *testing.T) {
	flags := runFlags(t)
	for _, overlay := range []string{"single", "microservices"} {
		t.Run(overlay, func(t *testing.T) {
			var pods []corev1.PodTemplateSpec
			var pdbs []*policyv1.PodDisruptionBudget
			kinds := map[string]int{}
			for _, doc := range render(t, filepath.Join(root, "k8s", "overlays", overlay)) {
				switch o := strict(t, doc).(type) {
				case *appsv1.Deployment:
					kinds["Deployment"]++
					pods = append(pods, o.Spec.Template)
					if o.Namespace == "" {
						t.Errorf("Deployment %s has no namespace", o.Name)
					}
				case *appsv1.StatefulSet:
					kinds["StatefulSet"]++
					pods = append(pods, o.Spec.Template)
				case *policyv1.PodDisruptionBudget:
					pdbs = append(pdbs, o)
				case *serviceMonitor:
					kinds["ServiceMonitor"]++
				case *networkingv1.NetworkPolicy:
					kinds["NetworkPolicy"]++
				}
			}
			if kinds["ServiceMonitor"] != 1 || kinds["NetworkPolicy"] == 0 {
				t.Errorf("kinds %v: want a ServiceMonitor and NetworkPolicies", kinds)
			}
			if overlay == "microservices" && (kinds["Deployment"] != 4 || kinds["StatefulSet"] != 1) {
				t.Errorf("microservices: %v, want 4 Deployments (one per target) and the NATS StatefulSet", kinds)
			}
			for _, p := range pods {
				covered := false
				for _, pdb := range pdbs {
					if matches(pdb.Spec.Selector.MatchLabels, p.Labels) {
						covered = true
					}
				}
				if !covered {
					t.Errorf("pods %v have no PodDisruptionBudget", p.Labels)
				}
				for _, c := range p.Spec.Containers {
					if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
						t.Errorf("container %s has no resource requests", c.Name)
					}
					if c.ReadinessProbe == nil || c.LivenessProbe == nil {
						t.Errorf("container %s lacks probes", c.Name)
						continue
					}
					if p.Labels["app.kubernetes.io/name"] != "klaxon" {
						continue
					}
					if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
						t.Errorf("klaxon probes: readiness %s, liveness %s", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
					}
					for _, a := range c.Args[1:] {
						name := strings.TrimPrefix(strings.SplitN(a, "=", 2)[0], "--")
						if !flags[name] {
							t.Errorf("container arg %q: klaxon run has no flag --%s", a, name)
						}
					}
				}
			}
		})
	}
}

func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func TestPrometheusRulesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found: apt-get install -y prometheus")
		}
		t.Skip("promtool not found: apt-get install -y prometheus")
	}
	out, err := exec.Command(promtool, "check", "rules", filepath.Join(root, "prometheus", "klaxon-rules.yml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	rules, _ := os.ReadFile(filepath.Join(root, "prometheus", "klaxon-rules.yml"))
	checkMetrics(t, "klaxon-rules.yml", string(rules))
}

func TestDashboardQueriesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "grafana", "klaxon-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&dash); err != nil || dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatalf("not a Grafana dashboard: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	checkMetrics(t, "dashboard", strings.Join(exprs, "\n"))
}

var exported map[string]bool

// checkMetrics requires every klaxon_* metric named in text to be exported
// by a running bin/klaxon (scraped after exercising it).
func checkMetrics(t *testing.T, what, text string) {
	t.Helper()
	if exported == nil {
		exported = scrape(t)
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`klaxon_[a-z_]+`).FindAllString(text, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			m = strings.TrimSuffix(m, suffix)
		}
		if seen[m] {
			continue
		}
		seen[m] = true
		if !exported[m] {
			t.Errorf("%s queries %s, which Klaxon does not export", what, m)
		}
	}
	if len(seen) == 0 {
		t.Fatalf("%s names no klaxon metric", what)
	}
}

// scrape starts Klaxon with rules that exercise every component, drives
// traffic through it, and returns the metric families it exports.
func scrape(t *testing.T) map[string]bool {
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": fmt.Sprintf(`
route: {receiver: sink, group_wait: 0s}
receivers: [{name: sink, webhook_configs: [{url: %q}]}]
policies: [{name: p, match: ['alertname="X"'], threshold: 0, window: 1h, labels: {alertname: PX}}]
heartbeats: [{name: hb, interval: 1h}]
slos: [{name: s, objective: 99.9, period: 30d, events: {}}]
`, sink.URL()+"/h")})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Extra: []string{"--slo.evaluation-interval", "100ms"}})
	k.Post("/api/v2/alerts", `[{"labels":{"alertname":"X"}}]`)
	k.Post("/api/v1/heartbeat/hb", ``)
	k.Post("/api/v1/slo/s/events", `{"good":1,"total":1}`)
	harness.Eventually(t, 10e9, "notifications", func() bool { return len(sink.Messages()) >= 2 })
	resp, err := http.Get(k.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = true
		}
	}
	// Counters and gauges registered as vectors appear only once used;
	// these exist in code and are idle in this short run.
	for _, idle := range []string{
		"klaxon_notifications_failed_total",     // no failed delivery in the run
		"klaxon_notifications_suppressed_total", // no duplicate in the run
		"klaxon_dead_letters_total",             // no dead letter in the run
		"klaxon_receiver_items_duplicate_total", // exported per endpoint once used
		"klaxon_heartbeat_derived_alerts_total", // no heartbeat went silent in the run
		"klaxon_slo_derived_alerts_total",       // no SLO burned in the run
	} {
		out[idle] = true
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("exported: %s", strings.Join(names, " "))
	return out
}
