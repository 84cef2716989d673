package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// routeAllToPath is routeAllTo with the webhook path as a parameter, so a
// notification tells which rules routed it; broken adds a route to an
// undefined receiver (at brokenLine).
func routeAllToPath(url, path string, broken bool) string {
	sub := ""
	if broken {
		sub = `
  routes:
    - matchers: ['team="x"']
      receiver: nobody`
	}
	return fmt.Sprintf(`route:
  receiver: sink
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h%s
receivers:
  - name: sink
    webhook_configs:
      - url: %s%s
        send_resolved: true
`, sub, url, path)
}

// brokenLine is where routeAllToPath(..., true) names the undefined receiver.
const brokenLine = 9

// metricSeries scrapes /metrics for one exact series; found is false when it
// is absent (so an absent gauge cannot pass for 0).
func metricSeries(t *testing.T, base, series string) (v float64, found bool) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v, true
			}
		}
	}
	return 0, false
}

// writeAtomic replaces path by a new file with content (rename, as editors
// and config management do), so no reader ever sees it half written.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "new.yml")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestReloadWithBrokenFileKeepsLastGoodRules covers the three reload
// triggers of README "Hot reload": POST /-/reload, SIGHUP and a file change.
//
// The tenant's klaxon.yml starts as a symlink to a file outside the rules
// dir: editing that file in place produces no fsnotify event in the watched
// dirs, so the POST and SIGHUP phases see only their own trigger. The last
// phase replaces the link inside the tenant dir, which only the watcher sees.
func TestReloadWithBrokenFileKeepsLastGoodRules(t *testing.T) {
	sink := harness.NewSink(t)
	rules := t.TempDir()
	tenantDir := filepath.Join(rules, "default")
	if err := os.Mkdir(tenantDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ruleFile := filepath.Join(tenantDir, "klaxon.yml")
	target := filepath.Join(t.TempDir(), "klaxon.yml")
	if err := os.WriteFile(target, []byte(routeAllToPath(sink.URL(), "/v1", false)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, ruleFile); err != nil {
		t.Fatal(err)
	}
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})

	post := func(name string) {
		t.Helper()
		if code, body := k.Post("/api/v2/alerts", fmt.Sprintf(`[{"labels":{"alertname":%q}}]`, name)); code != 200 {
			t.Fatalf("alert %s: %d %s", name, code, body)
		}
	}
	pathOf := func(name string) string {
		for _, m := range sink.Messages() {
			for _, a := range m.Alerts {
				if a.Labels["alertname"] == name {
					return m.Path
				}
			}
		}
		return ""
	}
	awaitAt := func(name, path string) {
		t.Helper()
		harness.Eventually(t, 15*time.Second, name+" notified", func() bool { return pathOf(name) != "" })
		if got := pathOf(name); got != path {
			t.Fatalf("%s was notified at %s, want %s (the rules in force)", name, got, path)
		}
	}
	const okSeries = "klaxon_config_last_reload_successful"
	const tsSeries = "klaxon_config_last_reload_success_timestamp_seconds"
	if v, ok := metricSeries(t, k.URL(), okSeries); !ok || v != 1 {
		t.Fatalf("%s at start = %v (present %v), want 1", okSeries, v, ok)
	}
	goodAt, ok := metricSeries(t, k.URL(), tsSeries)
	if !ok || goodAt <= 0 {
		t.Fatalf("%s at start = %v (present %v)", tsSeries, goodAt, ok)
	}
	post("Before")
	awaitAt("Before", "/v1")

	// 1. A broken file and POST /-/reload: the answer is Alertmanager's
	// (500, "failed to reload config: ...") and names file:line.
	if err := os.WriteFile(target, []byte(routeAllToPath(sink.URL(), "/broken", true)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, body := k.Post("/-/reload", "")
	if code != http.StatusInternalServerError {
		t.Fatalf("POST /-/reload of a broken file: %d %q, want 500 as Alertmanager answers", code, body)
	}
	where := fmt.Sprintf("%s:%d:", ruleFile, brokenLine)
	if !strings.HasPrefix(body, "failed to reload config: ") || !strings.Contains(body, where) || !strings.Contains(body, `undefined receiver "nobody"`) {
		t.Fatalf("POST /-/reload body %q must name %s and the undefined receiver", body, where)
	}
	if v, ok := metricSeries(t, k.URL(), okSeries); !ok || v != 0 {
		t.Fatalf("%s after the failed reload = %v (present %v), want 0", okSeries, v, ok)
	}
	if v, _ := metricSeries(t, k.URL(), tsSeries); v != goodAt {
		t.Fatalf("%s moved on a failed reload: %v, was %v", tsSeries, v, goodAt)
	}
	post("AfterBroken")
	awaitAt("AfterBroken", "/v1") // the last good rules still route

	// 2. A good file and SIGHUP.
	if err := os.WriteFile(target, []byte(routeAllToPath(sink.URL(), "/v2", false)), 0o644); err != nil {
		t.Fatal(err)
	}
	k.Signal(syscall.SIGHUP)
	harness.Eventually(t, 15*time.Second, okSeries+" 1 after SIGHUP", func() bool {
		v, ok := metricSeries(t, k.URL(), okSeries)
		return ok && v == 1
	})
	if !strings.Contains(k.Log(), "trigger=SIGHUP") {
		t.Fatalf("the reload was not SIGHUP's:\n%s", k.Log())
	}
	if v, _ := metricSeries(t, k.URL(), tsSeries); v < goodAt {
		t.Fatalf("%s after SIGHUP = %v, before %v", tsSeries, v, goodAt)
	}
	post("AfterSIGHUP")
	awaitAt("AfterSIGHUP", "/v2")

	// 3. A file change alone: the watcher (debounced 500ms) applies it.
	if strings.Contains(k.Log(), `trigger="file change"`) {
		t.Fatalf("the watcher reloaded before any watched file changed:\n%s", k.Log())
	}
	writeAtomic(t, ruleFile, routeAllToPath(sink.URL(), "/v3", false))
	harness.Eventually(t, 15*time.Second, "the watcher's reload", func() bool {
		return strings.Contains(k.Log(), `msg="rules reloaded" trigger="file change"`)
	})
	post("AfterFileChange")
	awaitAt("AfterFileChange", "/v3")

	// A broken file seen by the watcher keeps the last good rules too.
	writeAtomic(t, ruleFile, routeAllToPath(sink.URL(), "/broken", true))
	harness.Eventually(t, 15*time.Second, okSeries+" 0 after the watcher saw a broken file", func() bool {
		v, ok := metricSeries(t, k.URL(), okSeries)
		return ok && v == 0
	})
	post("AfterBrokenFileChange")
	awaitAt("AfterBrokenFileChange", "/v3")
	for _, m := range sink.Messages() {
		if m.Path == "/broken" {
			t.Errorf("a broken file's route was used: %+v", m)
		}
	}
}
