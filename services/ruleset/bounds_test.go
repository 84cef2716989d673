package ruleset

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPolicyWindowBounds: windows from 1s to 366d load; one outside the
// bounds is an error at the window's value, with file:line:col.
func TestPolicyWindowBounds(t *testing.T) {
	policy := func(window string) string {
		return okAM + `policies:
  - name: p
    match: ['alertname="KubePodRestart"']
    threshold: 3
    window: ` + window + `
    labels: {alertname: Derived}
`
	}
	for _, tc := range []struct {
		window string
		want   time.Duration
		err    string // "" = loads
	}{
		{"1s", time.Second, ""},
		{"15m", 15 * time.Minute, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{"365d", 365 * 24 * time.Hour, ""},
		{"366d", 366 * 24 * time.Hour, ""},
		{"366d1s", 0, `9:13: policy "p": window must be at most 366d`},
		{"367d", 0, `9:13: policy "p": window must be at most 366d`},
		{"2y", 0, `9:13: policy "p": window must be at most 366d`},
		{"0s", 0, `9:13: policy "p": window must be at least 1s`},
		{"500ms", 0, `9:13: policy "p": window must be at least 1s`},
		{"-1s", 0, `9:13: window: not a valid duration string: "-1s"`},
	} {
		t.Run(tc.window, func(t *testing.T) {
			got := loadOne(t, policy(tc.window))
			if tc.err == "" {
				if len(got) != 0 {
					t.Fatalf("window %s: %v", tc.window, got)
				}
				dir := t.TempDir()
				p := filepath.Join(dir, "r.yml")
				if err := os.WriteFile(p, []byte(policy(tc.window)), 0o644); err != nil {
					t.Fatal(err)
				}
				tn, errs := LoadFiles("t", []string{p})
				if len(errs) != 0 || time.Duration(tn.Policies[0].Window) != tc.want {
					t.Fatalf("window %s loaded as %v (%v)", tc.window, tn.Policies[0].Window, errs)
				}
				return
			}
			if fmt.Sprint(got) != fmt.Sprint([]string{tc.err}) {
				t.Fatalf("window %s: errors %q, want %q", tc.window, got, tc.err)
			}
		})
	}
}
