package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The repository's own rules must lint clean and their unit tests pass:
// this is what runs rules/*/*_test.yml in `make test`.
func TestRepoRulesLintAndTest(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "rules")
	var out, errb bytes.Buffer
	if code := run([]string{"rules", "lint", dir}, &out, &errb); code != 0 {
		t.Fatalf("rules lint %s: exit %d\n%s%s", dir, code, out.String(), errb.String())
	}
	tests, err := filepath.Glob(filepath.Join(dir, "*", "*_test.yml"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no rule tests under %s (%v)", dir, err)
	}
	out.Reset()
	errb.Reset()
	if code := run(append([]string{"rules", "test"}, tests...), &out, &errb); code != 0 {
		t.Fatalf("rules test: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), " 0 failed") {
		t.Fatalf("rules test output:\n%s", out.String())
	}
}

func TestLintReportsEveryErrorWithPosition(t *testing.T) {
	var out, errb bytes.Buffer
	dir := filepath.Join("testdata", "lint")
	if code := run([]string{"rules", "lint", dir}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, errb.String())
	}
	p := func(f string) string { return filepath.Join(dir, "acme", f) }
	want := strings.Join([]string{
		p("rules.yml") + `:4:17: undefined receiver "nobody" used in route`,
		p("rules.yml") + `:10:5: policy "p": labels.alertname is required (it names the derived alert)`,
		p("broken_test.yml") + `:4:13: at: not a valid duration string: "soon"`,
		p("broken_test.yml") + `:7:9: expected notification: receiver is required`,
		p("broken_test.yml") + `:8:43: alert: status must be firing or resolved, not "maybe"`,
		p("loki.yml") + `:7:17: record: invalid metric name "bad name"`,
		p("loki.yml") + `:9:14: for: only alerting rules may have for`,
		p("loki.yml") + `:10:11: group "errors": duplicate name (first at line 2)`,
		p("loki.yml") + `:12:9: one of record or alert is required`,
		p("loki.yml") + `:12:15: expr is required`,
		p("loki.yml") + `:16:49: expr: grouping not allowed for rate aggregation`,
		p("loki.yml") + `:18:16: expr: a ruler expression must be a metric query (e.g. wrap it in rate(...[5m]))`,
		"12 error(s)",
	}, "\n") + "\n"
	if errb.String() != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", errb.String(), want)
	}
}

func TestRulesTestReportsFailures(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "r.yml"), "route: {receiver: a}\nreceivers: [{name: a}]\n")
	writeFile(t, filepath.Join(dir, "r_test.yml"), `tests:
  - name: wrong receiver
    until: 1m
    input:
      - at: 0s
        alerts: [{labels: {alertname: X}}]
    expect:
      - at: 0s
        receiver: b
        alerts: [{labels: {alertname: X}}]
`)
	var out, errb bytes.Buffer
	if code := run([]string{"rules", "test", filepath.Join(dir, "r_test.yml")}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out.String(), errb.String())
	}
	for _, s := range []string{
		"FAIL " + filepath.Join(dir, "r_test.yml") + ": wrong receiver",
		"r_test.yml:8:9: expected notification not sent: at 0s: b {} firing [{alertname=\"X\"}=firing]",
		"unexpected notification: at 30s: a {} firing [{alertname=\"X\"}=firing]",
		"1 tests, 1 failed",
	} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// `rules test` answers what the live engine (and Alertmanager) would for
// inhibition: alerts matching both sides of a rule do not inhibit each
// other, and an inhibited alert that resolves leaves its group at the
// flush instead of being sent resolved later. Both were wrong while rule
// tests ran on the reference simulator instead of the engine.
func TestRuleTestInhibitionAnswersAsTheEngine(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"rules", "test", filepath.Join("testdata", "inhibit", "t", "twosided_test.yml")}, &out, &errb); code != 0 {
		t.Fatalf("rules test: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "2 tests, 0 failed") {
		t.Fatalf("rules test output:\n%s", out.String())
	}
}

// Linting a tenant's own directory (or an empty or mistyped one) fails:
// the server reads DIR/<tenant>/*.yml, so it said "0 tenants ... OK" on
// rules the next reload would refuse.
func TestLintOfATenantDirectoryFails(t *testing.T) {
	var out, errb bytes.Buffer
	tenantDir := filepath.Join("testdata", "lint", "acme")
	if code := run([]string{"rules", "lint", tenantDir}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "pass "+filepath.Join("testdata", "lint")) {
		t.Fatalf("lint %s: exit %d, want 1 naming the parent\n%s%s", tenantDir, code, out.String(), errb.String())
	}
	errb.Reset()
	if code := run([]string{"rules", "lint", t.TempDir()}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no tenant directories") {
		t.Fatalf("lint of an empty dir: exit %d, want 1\n%s", code, errb.String())
	}
}
