package admin_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/admin"
)

// memSilences is the smallest store that keeps the admin.Silences contract,
// per tenant, so the server's validation, filtering and error mapping are
// tested apart from the engine's KV store.
type memSilences struct {
	mu   sync.Mutex
	byID map[string]*adminv1.Silence
	seq  int
}

func (m *memSilences) CreateSilence(_ context.Context, tenant string, s *adminv1.Silence) (*adminv1.Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	s = proto.Clone(s).(*adminv1.Silence)
	s.Id = fmt.Sprintf("%s-%d", tenant, m.seq)
	s.State = adminv1.SilenceState_SILENCE_STATE_ACTIVE
	m.byID[s.Id] = s
	return s, nil
}

func (m *memSilences) ExpireSilence(_ context.Context, tenant, id string) (*adminv1.Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.byID[id]
	if !ok || s.Id[:len(tenant)] != tenant {
		return nil, fmt.Errorf("silence %s: %w", id, admin.ErrNotFound)
	}
	s.State = adminv1.SilenceState_SILENCE_STATE_EXPIRED
	return s, nil
}

func (m *memSilences) ListSilences(_ context.Context, tenant string) ([]*adminv1.Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*adminv1.Silence
	for id, s := range m.byID {
		if id[:len(tenant)] == tenant {
			out = append(out, s)
		}
	}
	return out, nil
}

func eq(name, value string) *adminv1.Matcher {
	return &adminv1.Matcher{Name: name, Value: value, Type: adminv1.MatcherType_MATCHER_TYPE_EQUAL}
}

func TestSilences(t *testing.T) {
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	e := start(t, func(c *admin.Config) {
		c.Silences = &memSilences{byID: map[string]*adminv1.Silence{}}
		c.Now = func() time.Time { return now }
	})
	sc := adminv1.NewSilenceServiceClient(e.conn)
	c := ctx(t, "default", "")
	in1h := timestamppb.New(now.Add(time.Hour))

	for _, tc := range []struct {
		name string
		s    *adminv1.Silence
	}{
		{"nil", nil},
		{"no matchers", &adminv1.Silence{EndsAt: in1h, CreatedBy: "me"}},
		{"no end", &adminv1.Silence{Matchers: []*adminv1.Matcher{eq("a", "b")}, CreatedBy: "me"}},
		{"no author", &adminv1.Silence{Matchers: []*adminv1.Matcher{eq("a", "b")}, EndsAt: in1h}},
		{"matches everything", &adminv1.Silence{Matchers: []*adminv1.Matcher{eq("a", "")}, EndsAt: in1h, CreatedBy: "me"}},
		{"bad regexp", &adminv1.Silence{Matchers: []*adminv1.Matcher{{Name: "a", Value: "(", Type: adminv1.MatcherType_MATCHER_TYPE_REGEXP}}, EndsAt: in1h, CreatedBy: "me"}},
		{"ended", &adminv1.Silence{Matchers: []*adminv1.Matcher{eq("a", "b")}, EndsAt: timestamppb.New(now.Add(-time.Minute)), CreatedBy: "me"}},
		{"ends before start", &adminv1.Silence{Matchers: []*adminv1.Matcher{eq("a", "b")}, StartsAt: timestamppb.New(now.Add(2 * time.Hour)), EndsAt: in1h, CreatedBy: "me"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sc.CreateSilence(c, &adminv1.CreateSilenceRequest{Silence: tc.s})
			wantCode(t, err, codes.InvalidArgument)
		})
	}

	created, err := sc.CreateSilence(c, &adminv1.CreateSilenceRequest{Silence: &adminv1.Silence{
		Matchers: []*adminv1.Matcher{eq("alertname", "DiskFull")}, EndsAt: in1h, CreatedBy: "me", Comment: "disk swap",
	}})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetSilence().GetId()
	if created.GetSilence().GetStartsAt().AsTime() != now {
		t.Fatalf("a silence without a start starts now: %v", created.GetSilence().GetStartsAt().AsTime())
	}
	if _, err := sc.CreateSilence(ctx(t, "team-a", ""), &adminv1.CreateSilenceRequest{Silence: &adminv1.Silence{
		Matchers: []*adminv1.Matcher{eq("alertname", "Other")}, EndsAt: in1h, CreatedBy: "me",
	}}); err != nil {
		t.Fatal(err)
	}

	list, err := sc.ListSilences(c, &adminv1.ListSilencesRequest{Matchers: []string{`alertname="DiskFull"`}})
	if err != nil || len(list.GetSilences()) != 1 || list.GetSilences()[0].GetId() != id {
		t.Fatalf("list: %v %v", list, err)
	}
	none, err := sc.ListSilences(c, &adminv1.ListSilencesRequest{Matchers: []string{`alertname="Other"`}})
	if err != nil || len(none.GetSilences()) != 0 {
		t.Fatalf("another tenant's silence listed: %v %v", none, err)
	}

	_, err = sc.ExpireSilence(c, &adminv1.ExpireSilenceRequest{Id: "team-a-2"})
	wantCode(t, err, codes.NotFound)
	if _, err := sc.ExpireSilence(c, &adminv1.ExpireSilenceRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	active, err := sc.ListSilences(c, &adminv1.ListSilencesRequest{})
	if err != nil || len(active.GetSilences()) != 0 {
		t.Fatalf("expired silence listed without --expired: %v %v", active, err)
	}
	all, err := sc.ListSilences(c, &adminv1.ListSilencesRequest{Expired: true})
	if err != nil || len(all.GetSilences()) != 1 {
		t.Fatalf("expired silence not listed with expired: %v %v", all, err)
	}
	_, err = sc.ListSilences(ctx(t, "*", ""), &adminv1.ListSilencesRequest{})
	wantCode(t, err, codes.InvalidArgument)
}

type memAlerts []*adminv1.AlertState

func (m memAlerts) ListAlerts(_ context.Context, tenant string) ([]*adminv1.AlertState, error) {
	var out []*adminv1.AlertState
	for _, a := range m {
		if a.GetTenant() == tenant {
			out = append(out, a)
		}
	}
	return out, nil
}

func TestAlerts(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	alert := func(fp, name string, minute int, mod func(*adminv1.AlertState)) *adminv1.AlertState {
		a := &adminv1.AlertState{Tenant: "default", Fingerprint: fp, Labels: map[string]string{"alertname": name},
			Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING, StartsAt: timestamppb.New(t0.Add(time.Duration(minute) * time.Minute)),
			Receivers: []string{"sink"}}
		if mod != nil {
			mod(a)
		}
		return a
	}
	e := start(t, func(c *admin.Config) {
		c.Alerts = memAlerts{
			alert("01", "DiskFull", 1, nil),
			alert("02", "DiskFull", 2, func(a *adminv1.AlertState) { a.Receivers = []string{"oncall"} }),
			alert("03", "DiskFull", 3, func(a *adminv1.AlertState) { a.SilencedBy = []string{"s1"} }),
			alert("04", "DiskFull", 4, func(a *adminv1.AlertState) { a.Status = klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED }),
			alert("05", "CPU", 5, func(a *adminv1.AlertState) { a.InhibitedBy = []string{"01"} }),
			alert("06", "DiskFull", 6, func(a *adminv1.AlertState) { a.Tenant = "team-a" }),
		}
	})
	ac := adminv1.NewAlertServiceClient(e.conn)
	c := ctx(t, "default", "")
	fps := func(req *adminv1.ListAlertsRequest) string {
		t.Helper()
		resp, err := ac.ListAlerts(c, req)
		if err != nil {
			t.Fatal(err)
		}
		s := ""
		for _, a := range resp.GetAlerts() {
			s += a.GetFingerprint() + " "
		}
		return s
	}
	for _, tc := range []struct {
		req  *adminv1.ListAlertsRequest
		want string
	}{
		{&adminv1.ListAlertsRequest{}, "02 01 "},
		{&adminv1.ListAlertsRequest{Silenced: true, Inhibited: true, Resolved: true}, "05 04 03 02 01 "},
		{&adminv1.ListAlertsRequest{Matchers: []string{`alertname="CPU"`}, Inhibited: true}, "05 "},
		{&adminv1.ListAlertsRequest{Receiver: "oncall"}, "02 "},
	} {
		if got := fps(tc.req); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.req, got, tc.want)
		}
	}
	got, err := ac.GetAlert(c, &adminv1.GetAlertRequest{Fingerprint: "03"})
	if err != nil || got.GetAlert().GetSilencedBy()[0] != "s1" {
		t.Fatalf("get: %v %v", got, err)
	}
	_, err = ac.GetAlert(c, &adminv1.GetAlertRequest{Fingerprint: "06"})
	wantCode(t, err, codes.NotFound)
	_, err = ac.ListAlerts(c, &adminv1.ListAlertsRequest{Matchers: []string{`a=~"("`}})
	wantCode(t, err, codes.InvalidArgument)
}

type memSLOs struct{ at time.Time }

func (m *memSLOs) SLOStatus(_ context.Context, tenant string, now time.Time) ([]*adminv1.SLOStatus, error) {
	m.at = now
	return []*adminv1.SLOStatus{{Name: tenant + "-availability", Objective: "99.9"}, {Name: "latency", Objective: "99"}}, nil
}

func (m *memSLOs) SLOReport(_ context.Context, _ string, w adminv1.ReportWindow, at time.Time) ([]*adminv1.SLOReport, error) {
	m.at = at
	return []*adminv1.SLOReport{{Name: "latency", Window: w}}, nil
}

func TestSLOs(t *testing.T) {
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	store := &memSLOs{}
	e := start(t, func(c *admin.Config) { c.SLOs = store; c.Now = func() time.Time { return now } })
	sc := adminv1.NewSLOServiceClient(e.conn)
	c := ctx(t, "default", "")
	st, err := sc.GetSLOStatus(c, &adminv1.GetSLOStatusRequest{Name: "default-availability"})
	if err != nil || len(st.GetSlos()) != 1 || !store.at.Equal(now) {
		t.Fatalf("status: %v %v", st, err)
	}
	_, err = sc.GetSLOStatus(c, &adminv1.GetSLOStatusRequest{Name: "nope"})
	wantCode(t, err, codes.NotFound)
	at := now.Add(-30 * 24 * time.Hour)
	rep, err := sc.GetSLOReport(c, &adminv1.GetSLOReportRequest{Window: adminv1.ReportWindow_REPORT_WINDOW_MONTHLY, At: timestamppb.New(at)})
	if err != nil || len(rep.GetReports()) != 1 || rep.GetReports()[0].GetWindow() != adminv1.ReportWindow_REPORT_WINDOW_MONTHLY || !store.at.Equal(at) {
		t.Fatalf("report: %v %v", rep, err)
	}
}
