package admin_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/admin"
	"github.com/klaxon-sh/klaxon/services/engine"
	"github.com/klaxon-sh/klaxon/services/engine/silence"
)

// team-b routes pages to oncall as well as to sink and inhibits warnings
// while a critical alert of the same name fires.
const inhibitRules = `route:
  receiver: sink
  group_by: [alertname]
  routes:
    - matchers: [severity="critical"]
      receiver: oncall
      continue: true
    - receiver: sink
receivers:
  - name: sink
  - name: oncall
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname]
`

// engineEnv is an admin server over the engine's KV state on a real bus, and
// a dispatcher (the engine's core) writing groups into that KV.
type engineEnv struct {
	*env
	d *engine.Dispatcher
}

func startEngineState(t *testing.T) *engineEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var d *engine.Dispatcher
	e := start(t, func(c *admin.Config) {
		writeRule(t, c.Rules.Dir(), filepath.Join("team-b", "klaxon.yml"), inhibitRules)
		if err := c.Rules.Reload(); err != nil {
			t.Fatal(err)
		}
		sils, err := silence.NewKV(ctx, c.Bus)
		if err != nil {
			t.Fatal(err)
		}
		if err := sils.Load(ctx); err != nil {
			t.Fatal(err)
		}
		groups, err := engine.NewGroupReader(ctx, c.Bus)
		if err != nil {
			t.Fatal(err)
		}
		st := &admin.EngineState{Groups: groups.Groups, Silences: sils, Rules: c.Rules,
			MaxSilences: func(tenant string) int {
				if tenant == "team-b" {
					return 1
				}
				return 0
			}}
		c.Alerts, c.Silences = st, st
		// The engine's side, as another process: its own store of groups
		// and its own view of the silences.
		store, err := engine.NewKVStore(ctx, c.Bus)
		if err != nil {
			t.Fatal(err)
		}
		engSils, err := silence.NewKV(ctx, c.Bus)
		if err != nil {
			t.Fatal(err)
		}
		d = engine.NewDispatcher(engine.DispatcherConfig{Rules: c.Rules.Tenant, Store: store, Silences: engSils})
	})
	return &engineEnv{env: e, d: d}
}

// receive puts an alert with labels ls into the tenant's groups.
func (e *engineEnv) receive(tenant string, ls map[string]string, endsAt time.Time) string {
	e.t.Helper()
	now := time.Now()
	a := &klaxonv1.Alert{Labels: ls, Annotations: map[string]string{"summary": "about " + ls["alertname"]},
		StartsAt: timestamppb.New(now.Add(-5 * time.Minute)), EndsAt: timestamppb.New(endsAt)}
	if err := e.d.Receive(context.Background(), tenant, a, now); err != nil {
		e.t.Fatal(err)
	}
	if err := e.d.Commit(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	lset := model.LabelSet{}
	for k, v := range ls {
		lset[model.LabelName(k)] = model.LabelValue(v)
	}
	return lset.Fingerprint().String()
}

func TestEngineStateSilences(t *testing.T) {
	e := startEngineState(t)
	sc := adminv1.NewSilenceServiceClient(e.conn)
	c := ctx(t, "default", "")
	in := &adminv1.Silence{
		Matchers: []*adminv1.Matcher{
			eq("alertname", "DiskFull"),
			{Name: "instance", Value: "db-.*", Type: adminv1.MatcherType_MATCHER_TYPE_REGEXP},
			{Name: "env", Value: "dev", Type: adminv1.MatcherType_MATCHER_TYPE_NOT_EQUAL},
			{Name: "team", Value: "web|ui", Type: adminv1.MatcherType_MATCHER_TYPE_NOT_REGEXP},
		},
		EndsAt: timestamppb.New(time.Now().Add(time.Hour)), CreatedBy: "ops", Comment: "disk swap",
	}
	created, err := sc.CreateSilence(c, &adminv1.CreateSilenceRequest{Silence: in})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetSilence().GetId()
	if len(id) != 36 || created.GetSilence().GetState() != adminv1.SilenceState_SILENCE_STATE_ACTIVE {
		t.Fatalf("created: %v", created)
	}

	list, err := sc.ListSilences(c, &adminv1.ListSilencesRequest{Matchers: []string{`alertname="DiskFull"`}})
	if err != nil || len(list.GetSilences()) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	got := list.GetSilences()[0]
	if got.GetId() != id || got.GetCreatedBy() != "ops" || got.GetComment() != "disk swap" ||
		got.GetState() != adminv1.SilenceState_SILENCE_STATE_ACTIVE || got.GetUpdatedAt() == nil {
		t.Fatalf("listed: %v", got)
	}
	if len(got.GetMatchers()) != len(in.GetMatchers()) {
		t.Fatalf("matchers: %v", got.GetMatchers())
	}
	for i, m := range got.GetMatchers() {
		if w := in.GetMatchers()[i]; m.GetName() != w.GetName() || m.GetValue() != w.GetValue() || m.GetType() != w.GetType() {
			t.Errorf("matcher %d: got %v, want %v", i, m, w)
		}
	}

	// Another tenant neither sees nor expires it.
	other := ctx(t, "team-a", "")
	if l, err := sc.ListSilences(other, &adminv1.ListSilencesRequest{Expired: true}); err != nil || len(l.GetSilences()) != 0 {
		t.Fatalf("team-a lists default's silence: %v %v", l, err)
	}
	_, err = sc.ExpireSilence(other, &adminv1.ExpireSilenceRequest{Id: id})
	wantCode(t, err, codes.NotFound)

	exp, err := sc.ExpireSilence(c, &adminv1.ExpireSilenceRequest{Id: id})
	if err != nil || exp.GetSilence().GetState() != adminv1.SilenceState_SILENCE_STATE_EXPIRED {
		t.Fatalf("expire: %v %v", exp, err)
	}
	_, err = sc.ExpireSilence(c, &adminv1.ExpireSilenceRequest{Id: id})
	wantCode(t, err, codes.FailedPrecondition)
	if l, err := sc.ListSilences(c, &adminv1.ListSilencesRequest{}); err != nil || len(l.GetSilences()) != 0 {
		t.Fatalf("expired silence listed without expired: %v %v", l, err)
	}
	if l, err := sc.ListSilences(c, &adminv1.ListSilencesRequest{Expired: true}); err != nil || len(l.GetSilences()) != 1 ||
		l.GetSilences()[0].GetState() != adminv1.SilenceState_SILENCE_STATE_EXPIRED {
		t.Fatalf("expired silence with expired: %v %v", l, err)
	}
	_, err = sc.ExpireSilence(c, &adminv1.ExpireSilenceRequest{Id: "no-such-id"})
	wantCode(t, err, codes.NotFound)

	// team!="" (everything with a team) does not match the empty string: a
	// valid silence, as in Alertmanager and /api/v2/silences; it was refused
	// for its empty value. foo=~".*" alone would mute everything: refused.
	if _, err := sc.CreateSilence(c, &adminv1.CreateSilenceRequest{Silence: &adminv1.Silence{
		Matchers: []*adminv1.Matcher{{Name: "team", Value: "", Type: adminv1.MatcherType_MATCHER_TYPE_NOT_EQUAL}},
		EndsAt:   timestamppb.New(time.Now().Add(time.Hour)), CreatedBy: "ops",
	}}); err != nil {
		t.Fatalf(`team!="": %v, want it created`, err)
	}
	_, err = sc.CreateSilence(c, &adminv1.CreateSilenceRequest{Silence: &adminv1.Silence{
		Matchers: []*adminv1.Matcher{{Name: "foo", Value: ".*", Type: adminv1.MatcherType_MATCHER_TYPE_REGEXP}},
		EndsAt:   timestamppb.New(time.Now().Add(time.Hour)), CreatedBy: "ops",
	}})
	wantCode(t, err, codes.InvalidArgument)

	// The store's own validation also answers InvalidArgument.
	_, err = sc.CreateSilence(c, &adminv1.CreateSilenceRequest{Silence: &adminv1.Silence{
		Matchers: []*adminv1.Matcher{eq("a", "b"), {Name: "c", Value: "x", Type: adminv1.MatcherType(99)}},
		EndsAt:   timestamppb.New(time.Now().Add(time.Hour)), CreatedBy: "ops",
	}})
	wantCode(t, err, codes.InvalidArgument)
}

func TestEngineStateMaxSilences(t *testing.T) {
	e := startEngineState(t)
	sc := adminv1.NewSilenceServiceClient(e.conn)
	c := ctx(t, "team-b", "")
	create := func() (*adminv1.CreateSilenceResponse, error) {
		return sc.CreateSilence(c, &adminv1.CreateSilenceRequest{Silence: &adminv1.Silence{
			Matchers: []*adminv1.Matcher{eq("alertname", "X")}, EndsAt: timestamppb.New(time.Now().Add(time.Hour)), CreatedBy: "ops",
		}})
	}
	first, err := create()
	if err != nil {
		t.Fatal(err)
	}
	_, err = create()
	wantCode(t, err, codes.ResourceExhausted)
	// Expired silences do not count.
	if _, err := sc.ExpireSilence(c, &adminv1.ExpireSilenceRequest{Id: first.GetSilence().GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := create(); err != nil {
		t.Fatalf("after expiring the first: %v", err)
	}
	// The limit is team-b's only.
	for range 3 {
		if _, err := sc.CreateSilence(ctx(t, "default", ""), &adminv1.CreateSilenceRequest{Silence: &adminv1.Silence{
			Matchers: []*adminv1.Matcher{eq("alertname", "X")}, EndsAt: timestamppb.New(time.Now().Add(time.Hour)), CreatedBy: "ops",
		}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEngineStateAlerts(t *testing.T) {
	e := startEngineState(t)
	ac := adminv1.NewAlertServiceClient(e.conn)
	sc := adminv1.NewSilenceServiceClient(e.conn)
	c := ctx(t, "default", "")
	inHour := time.Now().Add(time.Hour)
	disk := e.receive("default", map[string]string{"alertname": "DiskFull", "instance": "db-1"}, inHour)
	cpu := e.receive("default", map[string]string{"alertname": "CPU", "instance": "web-1"}, inHour)
	gone := e.receive("default", map[string]string{"alertname": "Gone"}, time.Now().Add(-time.Minute))

	fps := func(c context.Context, req *adminv1.ListAlertsRequest) map[string]*adminv1.AlertState {
		t.Helper()
		resp, err := ac.ListAlerts(c, req)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*adminv1.AlertState{}
		for _, a := range resp.GetAlerts() {
			out[a.GetFingerprint()] = a
		}
		return out
	}
	all := fps(c, &adminv1.ListAlertsRequest{Resolved: true})
	if len(all) != 3 || all[disk] == nil || all[cpu] == nil || all[gone] == nil {
		t.Fatalf("list --resolved: %v", all)
	}
	if a := all[disk]; a.GetStatus() != klaxonv1.AlertStatus_ALERT_STATUS_FIRING || a.GetTenant() != "default" ||
		a.GetLabels()["instance"] != "db-1" || a.GetAnnotations()["summary"] != "about DiskFull" ||
		!a.GetEndsAt().AsTime().Equal(inHour) || a.GetStartsAt() == nil ||
		len(a.GetReceivers()) != 1 || a.GetReceivers()[0] != "sink" || len(a.GetSilencedBy()) != 0 {
		t.Fatalf("DiskFull: %v", a)
	}
	if a := all[gone]; a.GetStatus() != klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED {
		t.Fatalf("Gone: %v", a)
	}
	if got := fps(c, &adminv1.ListAlertsRequest{}); len(got) != 2 || got[gone] != nil {
		t.Fatalf("resolved alerts listed without resolved: %v", got)
	}

	created, err := sc.CreateSilence(c, &adminv1.CreateSilenceRequest{Silence: &adminv1.Silence{
		Matchers: []*adminv1.Matcher{eq("alertname", "DiskFull"), {Name: "instance", Value: "db-.*", Type: adminv1.MatcherType_MATCHER_TYPE_REGEXP}},
		EndsAt:   timestamppb.New(inHour), CreatedBy: "ops",
	}})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetSilence().GetId()
	if got := fps(c, &adminv1.ListAlertsRequest{}); len(got) != 1 || got[cpu] == nil {
		t.Fatalf("silenced alert listed without silenced: %v", got)
	}
	if got := fps(c, &adminv1.ListAlertsRequest{Silenced: true}); len(got) != 2 || len(got[disk].GetSilencedBy()) != 1 || got[disk].GetSilencedBy()[0] != id {
		t.Fatalf("silenced: %v", got)
	}
	one, err := ac.GetAlert(c, &adminv1.GetAlertRequest{Fingerprint: disk})
	if err != nil || one.GetAlert().GetStatus() != klaxonv1.AlertStatus_ALERT_STATUS_FIRING ||
		len(one.GetAlert().GetSilencedBy()) != 1 || one.GetAlert().GetSilencedBy()[0] != id {
		t.Fatalf("get: %v %v", one, err)
	}
	if _, err := sc.ExpireSilence(c, &adminv1.ExpireSilenceRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	if got := fps(c, &adminv1.ListAlertsRequest{}); len(got) != 2 || len(got[disk].GetSilencedBy()) != 0 {
		t.Fatalf("after expiring the silence: %v", got)
	}

	// Another tenant sees none of it.
	other := ctx(t, "team-a", "")
	if got := fps(other, &adminv1.ListAlertsRequest{Silenced: true, Inhibited: true, Resolved: true}); len(got) != 0 {
		t.Fatalf("team-a lists default's alerts: %v", got)
	}
	_, err = ac.GetAlert(other, &adminv1.GetAlertRequest{Fingerprint: disk})
	wantCode(t, err, codes.NotFound)
}

func TestEngineStateInhibitedAndReceivers(t *testing.T) {
	e := startEngineState(t)
	ac := adminv1.NewAlertServiceClient(e.conn)
	c := ctx(t, "team-b", "")
	inHour := time.Now().Add(time.Hour)
	crit := e.receive("team-b", map[string]string{"alertname": "Bar", "severity": "critical"}, inHour)
	warn := e.receive("team-b", map[string]string{"alertname": "Bar", "severity": "warning"}, inHour)

	resp, err := ac.ListAlerts(c, &adminv1.ListAlertsRequest{})
	if err != nil || len(resp.GetAlerts()) != 1 || resp.GetAlerts()[0].GetFingerprint() != crit {
		t.Fatalf("inhibited alert listed without inhibited: %v %v", resp, err)
	}
	if r := resp.GetAlerts()[0].GetReceivers(); len(r) != 2 || r[0] != "oncall" || r[1] != "sink" {
		t.Fatalf("the critical alert goes to oncall and sink: %v", r)
	}
	got, err := ac.GetAlert(c, &adminv1.GetAlertRequest{Fingerprint: warn})
	if err != nil || len(got.GetAlert().GetInhibitedBy()) != 1 || got.GetAlert().GetInhibitedBy()[0] != crit {
		t.Fatalf("warning must be inhibited by %s: %v %v", crit, got, err)
	}
	resp, err = ac.ListAlerts(c, &adminv1.ListAlertsRequest{Inhibited: true, Receiver: "sink"})
	if err != nil || len(resp.GetAlerts()) != 2 {
		t.Fatalf("with inhibited: %v %v", resp, err)
	}
}
