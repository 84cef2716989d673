package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// The receiver refuses (404, with these reasons) what the example rules
// cannot take: a tenant without rules (a wrong X-Scope-OrgID, a Loki tenant
// with no directory), an unknown heartbeat or SLO, and counts for an SLO
// that counts alerts. Each was answered 2xx and then routed or counted
// nowhere.
func TestKnownInTheExampleRules(t *testing.T) {
	h, err := ruleset.NewHolder(filepath.Join("..", "..", "..", "rules"))
	if err != nil {
		t.Fatal(err)
	}
	known := knownInRules(h)
	for _, tc := range []struct {
		tenant, kind, name string
		refused            string
	}{
		{"default", "tenant", "", ""},
		{"default", "heartbeat", "nightly-backup", ""},
		{"default", "slo", "api-availability", ""},
		{"team-zzz", "tenant", "", `tenant "team-zzz" has no rules`},
		{"default", "heartbeat", "nightly-bakup", `no heartbeat "nightly-bakup"`},
		{"default", "slo", "api-availabilty", `no SLO "api-availabilty"`},
		{"default", "slo", "checkout-availability", "counts alerts (bad_alerts), not events"},
	} {
		err := known(tc.tenant, tc.kind, tc.name)
		if tc.refused == "" && err != nil || tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)) {
			t.Errorf("%s %s %q: %v, want %q", tc.tenant, tc.kind, tc.name, err, tc.refused)
		}
	}
}
