package admin_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
)

func TestRulesStatusLintReload(t *testing.T) {
	e := start(t, nil)
	rc := adminv1.NewRuleServiceClient(e.conn)
	c := ctx(t, "default", "")

	st, err := rc.GetRulesStatus(c, &adminv1.GetRulesStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetVersion() != 1 || !st.GetLastReloadSuccess() || len(st.GetTenants()) != 1 {
		t.Fatalf("status: %v", st)
	}
	if tr := st.GetTenants()[0]; tr.GetTenant() != "default" || len(tr.GetFiles()) != 1 ||
		strings.Join(tr.GetReceivers(), ",") != "sink,oncall" {
		t.Fatalf("tenant rules: %v", tr)
	}
	all, err := rc.GetRulesStatus(ctx(t, "*", ""), &adminv1.GetRulesStatusRequest{})
	if err != nil || len(all.GetTenants()) != 2 {
		t.Fatalf("all tenants: %v %v", all, err)
	}

	lint, err := rc.LintRules(c, &adminv1.LintRulesRequest{})
	if err != nil || !lint.GetValid() || lint.GetFiles() != 1 {
		t.Fatalf("lint of valid rules: %v %v", lint, err)
	}

	// Break a file: lint says where, reload refuses and keeps version 1.
	writeRule(t, e.rules, "default/klaxon.yml", validRules+"  - name: sink\n")
	lint, err = rc.LintRules(c, &adminv1.LintRulesRequest{})
	if err != nil || lint.GetValid() || len(lint.GetErrors()) == 0 {
		t.Fatalf("lint of invalid rules: %v %v", lint, err)
	}
	if le := lint.GetErrors()[0]; !strings.HasSuffix(le.GetFile(), "default/klaxon.yml") || le.GetLine() == 0 ||
		!strings.Contains(le.GetMessage(), "sink") {
		t.Fatalf("lint error: %v", le)
	}
	_, err = rc.ReloadRules(c, &adminv1.ReloadRulesRequest{})
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(err.Error(), "klaxon.yml:") {
		t.Fatalf("reload error does not say where: %v", err)
	}
	st, err = rc.GetRulesStatus(c, &adminv1.GetRulesStatusRequest{})
	if err != nil || st.GetVersion() != 1 || st.GetLastReloadSuccess() || st.GetLastReloadError() == "" {
		t.Fatalf("status after failed reload: %v %v", st, err)
	}

	writeRule(t, e.rules, "default/klaxon.yml", validRules)
	rl, err := rc.ReloadRules(c, &adminv1.ReloadRulesRequest{})
	if err != nil || rl.GetStatus().GetVersion() != 2 || !rl.GetStatus().GetLastReloadSuccess() {
		t.Fatalf("reload: %v %v", rl, err)
	}
}
