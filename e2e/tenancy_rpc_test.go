package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// adminConn dials klaxon's gRPC admin API.
func adminConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// withTenant adds the bearer token and x-scope-orgid ("" = none) to ctx.
func withTenant(ctx context.Context, token, tenant string) context.Context {
	var kv []string
	if token != "" {
		kv = append(kv, "authorization", "Bearer "+token)
	}
	if tenant != "" {
		kv = append(kv, "x-scope-orgid", tenant)
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// tenantRules routes everything to sink and alerts with dest="flaky" to a
// webhook nothing listens on (they end in the DLQ), and has one SLO.
func tenantRules(sink, unreachable, slo string) string {
	return fmt.Sprintf(`route:
  receiver: sink
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['dest="flaky"']
      receiver: flaky
receivers:
  - name: sink
    webhook_configs:
      - url: %s/hook
  - name: flaky
    webhook_configs:
      - url: http://%s/hook
slos:
  - name: %s
    objective: 99.9
    period: 30d
    events: {}
`, sink, unreachable, slo)
}

// tailOf starts a Tail as ctx's caller and returns what it streams once the
// server says it is live.
func tailOf(t *testing.T, ctx context.Context, c adminv1.AlertServiceClient) <-chan *adminv1.TailResponse {
	t.Helper()
	s, err := c.Tail(ctx, &adminv1.TailRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if md, err := s.Header(); err != nil || len(md.Get("x-klaxon-tail")) == 0 {
		t.Fatalf("tail not live: %v %v", md, err)
	}
	out := make(chan *adminv1.TailResponse, 256)
	go func() {
		defer close(out)
		for {
			r, err := s.Recv()
			if err != nil {
				return
			}
			out <- r
		}
	}()
	return out
}

// tenantOfTail is the tenant an item of a tail belongs to.
func tenantOfTail(r *adminv1.TailResponse) string {
	switch {
	case r.GetEnvelope() != nil:
		return r.GetEnvelope().GetTenant()
	case r.GetNotification() != nil:
		return r.GetNotification().GetTenant()
	case r.GetDelivery() != nil:
		return r.GetDelivery().GetNotification().GetTenant()
	}
	return "?" + r.GetSubject()
}

// TestTenantRPCIsolation: over a real gRPC connection to klaxon run --auth,
// every RPC of the admin API answers Unauthenticated without a token (and
// with an unknown one) and PermissionDenied to team-b's token naming team-a;
// with its own token team-b neither sees nor acts on team-a's alert,
// silence, SLO, deliveries, dead letter, tail or rule errors. An admin
// token naming team-a sees them.
func TestTenantRPCIsolation(t *testing.T) {
	sinkA, sinkB := harness.NewSink(t), harness.NewSink(t)
	nobody := harness.FreeAddr(t) // nothing listens: team-a's flaky receiver fails
	rules := harness.WriteRules(t, map[string]string{
		"team-a/klaxon.yml": tenantRules(sinkA.URL(), nobody, "a-only"),
		"team-b/klaxon.yml": tenantRules(sinkB.URL(), nobody, "b-only"),
		"tenants.yml": fmt.Sprintf("tenants:\n  team-a: {tokens: [%q]}\n  team-b: {tokens: [%q]}\nadmin_tokens: [%q]\n",
			tokenHash("token-a"), tokenHash("token-b"), tokenHash("token-root")),
	})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Extra: []string{"--auth",
		"--notify.max-deliver", "2", "--notify.attempts", "2", "--notify.min-backoff", "20ms", "--notify.max-backoff", "100ms"}})
	cc := adminConn(t, k.GRPC)
	alerts := adminv1.NewAlertServiceClient(cc)
	silences := adminv1.NewSilenceServiceClient(cc)
	rulesC := adminv1.NewRuleServiceClient(cc)
	slos := adminv1.NewSLOServiceClient(cc)
	deliveries := adminv1.NewDeliveryServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	asA, asB := withTenant(ctx, "token-a", ""), withTenant(ctx, "token-b", "")
	rootA := withTenant(ctx, "token-root", "team-a")

	// team-a's data: an alert delivered, one dead-lettered, a silence, SLO
	// counts. team-b has an alert of its own, so its views are not empty.
	post := func(token, body string) {
		t.Helper()
		if code, resp := k.Post("/api/v2/alerts", body, "Authorization", "Bearer "+token); code != 200 {
			t.Fatalf("post as %s: %d %s", token, code, resp)
		}
	}
	post("token-a", `[{"labels":{"alertname":"AOnly"}},{"labels":{"alertname":"ADead","dest":"flaky"}}]`)
	post("token-b", `[{"labels":{"alertname":"BOnly"}}]`)
	if code, body := k.Post("/api/v1/slo/a-only/events", `{"good":0,"total":7}`, "Authorization", "Bearer token-a"); code != 202 {
		t.Fatalf("slo events: %d %s", code, body)
	}
	sil, err := silences.CreateSilence(asA, &adminv1.CreateSilenceRequest{Silence: &adminv1.Silence{
		Matchers: []*adminv1.Matcher{{Name: "alertname", Value: "NeverFires", Type: adminv1.MatcherType_MATCHER_TYPE_EQUAL}},
		EndsAt:   timestamppb.New(time.Now().Add(time.Hour)), CreatedBy: "e2e", Comment: "team-a's",
	}})
	if err != nil {
		t.Fatal(err)
	}
	silID := sil.GetSilence().GetId()
	var fp string
	var deadSeq uint64
	var aDeliveries []uint64
	harness.Eventually(t, 30*time.Second, "team-a's alert, deliveries, dead letter and SLO events, and team-b's delivery", func() bool {
		if fp == "" {
			if r, err := alerts.ListAlerts(asA, &adminv1.ListAlertsRequest{Matchers: []string{"alertname=AOnly"}}); err == nil && len(r.GetAlerts()) == 1 {
				fp = r.GetAlerts()[0].GetFingerprint()
			}
		}
		if deadSeq == 0 {
			if r, err := deliveries.ListDeadLetters(asA, &adminv1.ListDeadLettersRequest{}); err == nil && len(r.GetDeadLetters()) > 0 {
				deadSeq = r.GetDeadLetters()[0].GetSeq()
			}
		}
		aDeliveries = nil
		if r, err := deliveries.ListDeliveries(asA, &adminv1.ListDeliveriesRequest{Outcome: "success"}); err == nil {
			for _, d := range r.GetDeliveries() {
				aDeliveries = append(aDeliveries, d.GetSeq())
			}
		}
		if s, err := slos.GetSLOStatus(asA, &adminv1.GetSLOStatusRequest{Name: "a-only"}); err != nil || s.GetSlos()[0].GetTotal() != 7 {
			return false
		}
		b, err := deliveries.ListDeliveries(asB, &adminv1.ListDeliveriesRequest{Outcome: "success"})
		return fp != "" && deadSeq != 0 && len(aDeliveries) > 0 && err == nil && len(b.GetDeliveries()) > 0
	})

	code := func(err error) codes.Code { return status.Code(err) }
	type rpc struct {
		name string
		// call makes the RPC as ctx's caller (aimed at team-a's data).
		call func(ctx context.Context) error
		// isolated checks, with team-b's own token, that team-a's data is
		// neither visible nor actionable; it returns what leaked.
		isolated func() string
	}
	table := []rpc{
		{"AlertService/ListAlerts",
			func(ctx context.Context) error {
				_, err := alerts.ListAlerts(ctx, &adminv1.ListAlertsRequest{Silenced: true, Inhibited: true, Resolved: true})
				return err
			},
			func() string {
				r, err := alerts.ListAlerts(asB, &adminv1.ListAlertsRequest{Silenced: true, Inhibited: true, Resolved: true})
				if err != nil || len(r.GetAlerts()) == 0 {
					return fmt.Sprintf("team-b cannot list its own alerts: %v", err)
				}
				for _, a := range r.GetAlerts() {
					if a.GetFingerprint() == fp || a.GetTenant() != "team-b" {
						return fmt.Sprintf("team-b lists %v", a)
					}
				}
				return ""
			}},
		{"AlertService/GetAlert",
			func(ctx context.Context) error {
				_, err := alerts.GetAlert(ctx, &adminv1.GetAlertRequest{Fingerprint: fp})
				return err
			},
			func() string {
				if _, err := alerts.GetAlert(asB, &adminv1.GetAlertRequest{Fingerprint: fp}); code(err) != codes.NotFound {
					return fmt.Sprintf("team-b's GetAlert of team-a's fingerprint: %v, want NotFound", err)
				}
				return ""
			}},
		{"AlertService/Tail",
			func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				s, err := alerts.Tail(ctx, &adminv1.TailRequest{})
				if err != nil {
					return err
				}
				_, err = s.Recv()
				return err
			},
			func() string {
				tctx, cancel := context.WithCancel(ctx)
				defer cancel()
				tb := tailOf(t, withTenant(tctx, "token-b", ""), alerts)
				ta := tailOf(t, withTenant(tctx, "token-a", ""), alerts)
				post("token-a", `[{"labels":{"alertname":"ATailed"}}]`)
				deadline := time.After(20 * time.Second)
				for seen := false; !seen; {
					select {
					case r := <-ta:
						seen = r.GetEnvelope().GetAlert().GetLabels()["alertname"] == "ATailed"
					case r := <-tb:
						if tenantOfTail(r) != "team-b" {
							return fmt.Sprintf("team-b's tail streamed %s of tenant %s", r.GetSubject(), tenantOfTail(r))
						}
					case <-deadline:
						return "team-a's own tail never showed its alert"
					}
				}
				// What A's alert causes (its notification and delivery) follows.
				grace := time.After(3 * time.Second)
				for {
					select {
					case r := <-tb:
						if tenantOfTail(r) != "team-b" {
							return fmt.Sprintf("team-b's tail streamed %s of tenant %s", r.GetSubject(), tenantOfTail(r))
						}
					case <-grace:
						return ""
					}
				}
			}},
		{"SilenceService/CreateSilence",
			func(ctx context.Context) error {
				_, err := silences.CreateSilence(ctx, &adminv1.CreateSilenceRequest{Silence: &adminv1.Silence{
					Matchers: []*adminv1.Matcher{{Name: "alertname", Value: "AOnly"}},
					EndsAt:   timestamppb.New(time.Now().Add(time.Hour)), CreatedBy: "intruder"}})
				return err
			},
			func() string {
				// team-b's silence matching team-a's alert stays team-b's: it
				// mutes nothing of team-a's and is not in team-a's list.
				r, err := silences.CreateSilence(asB, &adminv1.CreateSilenceRequest{Silence: &adminv1.Silence{
					Matchers: []*adminv1.Matcher{{Name: "alertname", Value: "AOnly"}},
					EndsAt:   timestamppb.New(time.Now().Add(time.Hour)), CreatedBy: "team-b"}})
				if err != nil {
					return fmt.Sprintf("team-b cannot create its own silence: %v", err)
				}
				time.Sleep(500 * time.Millisecond) // the store's KV watch
				a, err := alerts.GetAlert(asA, &adminv1.GetAlertRequest{Fingerprint: fp})
				if err != nil || len(a.GetAlert().GetSilencedBy()) != 0 {
					return fmt.Sprintf("team-a's alert after team-b's silence: %v %v", a, err)
				}
				l, err := silences.ListSilences(asA, &adminv1.ListSilencesRequest{Expired: true})
				if err != nil || slices.ContainsFunc(l.GetSilences(), func(s *adminv1.Silence) bool { return s.GetId() == r.GetSilence().GetId() }) {
					return fmt.Sprintf("team-a lists team-b's silence: %v %v", l, err)
				}
				return ""
			}},
		{"SilenceService/ExpireSilence",
			func(ctx context.Context) error {
				_, err := silences.ExpireSilence(ctx, &adminv1.ExpireSilenceRequest{Id: silID})
				return err
			},
			func() string {
				if _, err := silences.ExpireSilence(asB, &adminv1.ExpireSilenceRequest{Id: silID}); code(err) != codes.NotFound {
					return fmt.Sprintf("team-b's ExpireSilence of team-a's silence: %v, want NotFound", err)
				}
				return ""
			}},
		{"SilenceService/ListSilences",
			func(ctx context.Context) error {
				_, err := silences.ListSilences(ctx, &adminv1.ListSilencesRequest{Expired: true})
				return err
			},
			func() string {
				r, err := silences.ListSilences(asB, &adminv1.ListSilencesRequest{Expired: true})
				if err != nil || slices.ContainsFunc(r.GetSilences(), func(s *adminv1.Silence) bool { return s.GetId() == silID }) {
					return fmt.Sprintf("team-b's ListSilences: %v %v", r, err)
				}
				return ""
			}},
		{"RuleService/LintRules",
			func(ctx context.Context) error {
				_, err := rulesC.LintRules(ctx, &adminv1.LintRulesRequest{})
				return err
			},
			func() string {
				r, err := rulesC.LintRules(asB, &adminv1.LintRulesRequest{})
				if err != nil || !r.GetValid() || r.GetTenants() != 1 || r.GetFiles() != 1 {
					return fmt.Sprintf("team-b's LintRules counts more than its own rules: %v %v", r, err)
				}
				return ""
			}},
		{"RuleService/ReloadRules",
			func(ctx context.Context) error {
				_, err := rulesC.ReloadRules(ctx, &adminv1.ReloadRulesRequest{})
				return err
			},
			func() string {
				r, err := rulesC.ReloadRules(asB, &adminv1.ReloadRulesRequest{})
				if err != nil || len(r.GetStatus().GetTenants()) != 1 || r.GetStatus().GetTenants()[0].GetTenant() != "team-b" {
					return fmt.Sprintf("team-b's ReloadRules: %v %v", r, err)
				}
				return ""
			}},
		{"RuleService/GetRulesStatus",
			func(ctx context.Context) error {
				_, err := rulesC.GetRulesStatus(ctx, &adminv1.GetRulesStatusRequest{})
				return err
			},
			func() string {
				r, err := rulesC.GetRulesStatus(asB, &adminv1.GetRulesStatusRequest{})
				if err != nil || len(r.GetTenants()) != 1 || r.GetTenants()[0].GetTenant() != "team-b" {
					return fmt.Sprintf("team-b's GetRulesStatus: %v %v", r, err)
				}
				return ""
			}},
		{"SLOService/GetSLOStatus",
			func(ctx context.Context) error {
				_, err := slos.GetSLOStatus(ctx, &adminv1.GetSLOStatusRequest{Name: "a-only"})
				return err
			},
			func() string {
				if _, err := slos.GetSLOStatus(asB, &adminv1.GetSLOStatusRequest{Name: "a-only"}); code(err) != codes.NotFound {
					return fmt.Sprintf("team-b's GetSLOStatus(a-only): %v, want NotFound", err)
				}
				r, err := slos.GetSLOStatus(asB, &adminv1.GetSLOStatusRequest{})
				if err != nil || len(r.GetSlos()) != 1 || r.GetSlos()[0].GetName() != "b-only" || r.GetSlos()[0].GetTotal() != 0 {
					return fmt.Sprintf("team-b's GetSLOStatus: %v %v, want only b-only with no events", r, err)
				}
				return ""
			}},
		{"SLOService/GetSLOReport",
			func(ctx context.Context) error {
				_, err := slos.GetSLOReport(ctx, &adminv1.GetSLOReportRequest{Name: "a-only"})
				return err
			},
			func() string {
				if _, err := slos.GetSLOReport(asB, &adminv1.GetSLOReportRequest{Name: "a-only"}); code(err) != codes.NotFound {
					return fmt.Sprintf("team-b's GetSLOReport(a-only): %v, want NotFound", err)
				}
				r, err := slos.GetSLOReport(asB, &adminv1.GetSLOReportRequest{})
				if err != nil {
					return err.Error()
				}
				for _, rep := range r.GetReports() {
					if rep.GetName() != "b-only" || rep.GetTotal() != 0 {
						return fmt.Sprintf("team-b's GetSLOReport shows %v", rep)
					}
				}
				return ""
			}},
		{"DeliveryService/ListDeliveries",
			func(ctx context.Context) error {
				_, err := deliveries.ListDeliveries(ctx, &adminv1.ListDeliveriesRequest{})
				return err
			},
			func() string {
				r, err := deliveries.ListDeliveries(asB, &adminv1.ListDeliveriesRequest{Limit: 1000})
				if err != nil || len(r.GetDeliveries()) == 0 {
					return fmt.Sprintf("team-b cannot list its own deliveries: %v", err)
				}
				for _, d := range r.GetDeliveries() {
					if slices.Contains(aDeliveries, d.GetSeq()) || d.GetRecord().GetNotification().GetTenant() != "team-b" {
						return fmt.Sprintf("team-b lists delivery %d of tenant %s", d.GetSeq(), d.GetRecord().GetNotification().GetTenant())
					}
				}
				return ""
			}},
		{"DeliveryService/ListDeadLetters",
			func(ctx context.Context) error {
				_, err := deliveries.ListDeadLetters(ctx, &adminv1.ListDeadLettersRequest{})
				return err
			},
			func() string {
				r, err := deliveries.ListDeadLetters(asB, &adminv1.ListDeadLettersRequest{})
				if err != nil {
					return err.Error()
				}
				for _, dl := range r.GetDeadLetters() {
					if dl.GetSeq() == deadSeq || dl.GetLetter().GetNotification().GetTenant() != "team-b" {
						return fmt.Sprintf("team-b lists dead letter %d of tenant %s", dl.GetSeq(), dl.GetLetter().GetNotification().GetTenant())
					}
				}
				return ""
			}},
		{"DeliveryService/ReplayDeadLetter",
			func(ctx context.Context) error {
				_, err := deliveries.ReplayDeadLetter(ctx, &adminv1.ReplayDeadLetterRequest{Seq: deadSeq})
				return err
			},
			func() string {
				if _, err := deliveries.ReplayDeadLetter(asB, &adminv1.ReplayDeadLetterRequest{Seq: deadSeq}); code(err) != codes.NotFound {
					return fmt.Sprintf("team-b's ReplayDeadLetter of team-a's letter: %v, want NotFound", err)
				}
				return ""
			}},
	}
	for _, tc := range table {
		t.Run(strings.ReplaceAll(tc.name, "/", "_"), func(t *testing.T) {
			if err := tc.call(withTenant(ctx, "", "team-a")); code(err) != codes.Unauthenticated {
				t.Errorf("without a token: %v, want Unauthenticated", err)
			}
			if err := tc.call(withTenant(ctx, "nope", "team-a")); code(err) != codes.Unauthenticated {
				t.Errorf("with an unknown token: %v, want Unauthenticated", err)
			}
			if err := tc.call(withTenant(ctx, "token-b", "team-a")); code(err) != codes.PermissionDenied {
				t.Errorf("with team-b's token naming team-a: %v, want PermissionDenied", err)
			}
			if leak := tc.isolated(); leak != "" {
				t.Error(leak)
			}
		})
	}

	// team-a's data survived team-b's attempts, and an admin token naming
	// team-a sees it.
	for _, ctx := range []context.Context{asA, rootA} {
		if _, err := alerts.GetAlert(ctx, &adminv1.GetAlertRequest{Fingerprint: fp}); err != nil {
			t.Errorf("GetAlert of team-a's alert: %v", err)
		}
		l, err := silences.ListSilences(ctx, &adminv1.ListSilencesRequest{})
		if err != nil || !slices.ContainsFunc(l.GetSilences(), func(s *adminv1.Silence) bool {
			return s.GetId() == silID && s.GetState() == adminv1.SilenceState_SILENCE_STATE_ACTIVE
		}) {
			t.Errorf("team-a's silence %s is not listed active: %v %v", silID, l, err)
		}
		d, err := deliveries.ListDeadLetters(ctx, &adminv1.ListDeadLettersRequest{})
		if err != nil || !slices.ContainsFunc(d.GetDeadLetters(), func(dl *adminv1.DeadLetter) bool { return dl.GetSeq() == deadSeq }) {
			t.Errorf("team-a's dead letter %d is gone: %v %v", deadSeq, d, err)
		}
		s, err := slos.GetSLOStatus(ctx, &adminv1.GetSLOStatusRequest{Name: "a-only"})
		if err != nil || s.GetSlos()[0].GetTotal() != 7 {
			t.Errorf("team-a's SLO: %v %v, want its 7 events", s, err)
		}
	}

	// A broken rule file of team-a: team-b's lint, reload and status tell it
	// that other tenants' rules have errors, never which or where.
	broken := strings.Replace(tenantRules(sinkA.URL(), nobody, "a-only"), "receiver: flaky", "receiver: secret-receiver-of-team-a", 1)
	if err := os.WriteFile(filepath.Join(rules, "team-a", "klaxon.yml"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	lint, err := rulesC.LintRules(asB, &adminv1.LintRulesRequest{})
	if err != nil || lint.GetValid() {
		t.Fatalf("team-b's lint of a broken team-a file: %v %v, want invalid", lint, err)
	}
	for _, e := range lint.GetErrors() {
		if e.GetFile() != "" || strings.Contains(e.GetMessage(), "team-a") {
			t.Errorf("team-b's lint shows team-a's error %v", e)
		}
	}
	if _, err := rulesC.ReloadRules(asB, &adminv1.ReloadRulesRequest{}); code(err) != codes.FailedPrecondition || strings.Contains(err.Error(), "team-a") {
		t.Errorf("team-b's reload with team-a's broken file: %v, want FailedPrecondition not naming team-a", err)
	}
	if st, err := rulesC.GetRulesStatus(asB, &adminv1.GetRulesStatusRequest{}); err != nil || strings.Contains(st.GetLastReloadError(), "team-a") || st.GetLastReloadError() == "" {
		t.Errorf("team-b's rules status: %v %v, want an error not naming team-a", st, err)
	}
	if _, err := rulesC.ReloadRules(rootA, &adminv1.ReloadRulesRequest{}); err == nil || !strings.Contains(err.Error(), "secret-receiver-of-team-a") {
		t.Errorf("team-a's reload (as admin) must show its own error: %v", err)
	}
}
