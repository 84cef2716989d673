package admin_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	"github.com/klaxon-sh/klaxon/services/admin"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

func TestAuth(t *testing.T) {
	tenants := &ruleset.Tenants{
		Tenants: map[string]ruleset.TenantAuth{
			"team-a":  {Tokens: []string{ruleset.HashToken("a-token")}},
			"default": {Tokens: []string{ruleset.HashToken("d-token")}},
		},
		AdminTokens: []string{ruleset.HashToken("root")},
	}
	e := start(t, func(c *admin.Config) { c.Tenants = tenants })
	rc := adminv1.NewRuleServiceClient(e.conn)
	call := func(tenant, token string) error {
		_, err := rc.GetRulesStatus(ctx(t, tenant, token), &adminv1.GetRulesStatusRequest{})
		return err
	}
	for _, tc := range []struct {
		name, tenant, token string
		code                codes.Code
	}{
		{"no token", "team-a", "", codes.Unauthenticated},
		{"unknown token", "team-a", "nope", codes.Unauthenticated},
		{"another tenant's token", "team-a", "d-token", codes.PermissionDenied},
		{"tenant token for all tenants", "*", "a-token", codes.PermissionDenied},
		{"bad tenant name", "a.b", "a-token", codes.InvalidArgument},
		{"own token", "team-a", "a-token", codes.OK},
		{"own token, tenant implied", "", "a-token", codes.OK},
		{"admin for a tenant", "team-a", "root", codes.OK},
		{"admin for all", "*", "root", codes.OK},
		{"admin without a tenant", "", "root", codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, call(tc.tenant, tc.token), tc.code) })
	}

	// An admin token without a tenant is told the flag to set.
	if err := call("", "root"); !strings.Contains(fmt.Sprint(err), "klaxonctl --tenant") {
		t.Fatalf("admin without a tenant: %v, want the --tenant flag named", err)
	}

	// The token decides which tenant's rules are visible.
	st, err := rc.GetRulesStatus(ctx(t, "", "a-token"), &adminv1.GetRulesStatusRequest{})
	if err != nil || len(st.GetTenants()) != 1 || st.GetTenants()[0].GetTenant() != "team-a" {
		t.Fatalf("status for team-a: %v %v", st, err)
	}

	// Streams are checked too.
	tail, err := adminv1.NewAlertServiceClient(e.conn).Tail(ctx(t, "team-a", "d-token"), &adminv1.TailRequest{})
	if err == nil {
		_, err = tail.Recv()
	}
	wantCode(t, err, codes.PermissionDenied)

	// Health probes need no token.
	h, err := healthpb.NewHealthClient(e.conn).Check(ctx(t, "", ""), &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}

	const m = "/klaxon.admin.v1.RuleService/GetRulesStatus"
	if got := requests(t, e, m, "PermissionDenied"); got != 2 {
		t.Fatalf("klaxon_admin_requests_total{code=PermissionDenied} = %v, want 2", got)
	}
	if got := requests(t, e, m, "OK"); got != 5 {
		t.Fatalf("klaxon_admin_requests_total{code=OK} = %v, want 5", got)
	}
}

// requests reads klaxon_admin_requests_total{method,code} from the registry.
func requests(t *testing.T, e *env, method, code string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "klaxon_admin_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["method"] == method && l["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
