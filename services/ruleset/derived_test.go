package ruleset

import (
	"os"
	"path/filepath"
	"testing"
)

// Derived is true when any tenant has a policy, heartbeat or SLO: the
// derived-alert consumer decodes ingested envelopes only then.
func TestDerivedSaysWhetherAnyTenantCountsEnvelopes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		other string // a second tenant's extra rules
		want  bool
	}{
		{"routes only", "", false},
		{"a policy", "policies:\n  - {name: p, match: ['alertname=\"A\"'], threshold: 3, window: 15m, labels: {alertname: Flapping}}\n", true},
		{"a heartbeat", "heartbeats:\n  - {name: hb, interval: 1m}\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for tenant, extra := range map[string]string{"a": "", "b": tc.other} {
				if err := os.MkdirAll(filepath.Join(dir, tenant), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, tenant, "r.yml"), []byte(okAM+extra), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			set, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := set.Derived(); got != tc.want {
				t.Fatalf("Derived() = %v, want %v", got, tc.want)
			}
		})
	}
}
