package admin_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/admin"
	"github.com/klaxon-sh/klaxon/services/bus"
)

func alertEnvelope(tenant, source, alertname string) *klaxonv1.Envelope {
	return &klaxonv1.Envelope{
		Tenant: tenant, Source: source, Id: tenant + alertname, ReceivedAt: timestamppb.New(time.Unix(1700000000, 0)),
		Payload: &klaxonv1.Envelope_Alert{Alert: &klaxonv1.Alert{
			Labels: map[string]string{"alertname": alertname}, Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING,
		}},
	}
}

// tail opens a tail and waits until the server says it is live.
func (e *env) tail(c context.Context, req *adminv1.TailRequest) grpc.ServerStreamingClient[adminv1.TailResponse] {
	e.t.Helper()
	st, err := adminv1.NewAlertServiceClient(e.conn).Tail(c, req)
	if err != nil {
		e.t.Fatal(err)
	}
	md, err := st.Header()
	if err != nil {
		e.t.Fatal(err)
	}
	if v := md.Get(admin.TailReadyHeader); len(v) != 1 || v[0] != "live" {
		e.t.Fatalf("tail header %v", md)
	}
	// The tenant tailed, which klaxonctl prints (the token's, when the
	// caller named none).
	if v := md.Get(admin.TailTenantHeader); len(v) != 1 || v[0] == "" {
		e.t.Fatalf("tail tenant header %v", md)
	}
	return st
}

func TestTailStreamsInAndOutOfOneTenant(t *testing.T) {
	e := start(t, nil)
	c := ctx(t, "default", "")
	st := e.tail(c, &adminv1.TailRequest{})

	// Another tenant's items come first: the first item received must
	// still be the caller's own.
	e.publish(bus.IngestSubject("team-a", "alerts-v2"), alertEnvelope("team-a", "alerts-v2", "Theirs"))
	e.publish(bus.AuditSubject("team-a"), audit("team-a", "sink", "success", 1))
	e.publish(bus.IngestSubject("default", "alerts-v2"), alertEnvelope("default", "alerts-v2", "Mine"))
	e.publish(bus.AuditSubject("default"), audit("default", "sink", "success", 2))

	got, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got.GetEnvelope().GetAlert().GetLabels()["alertname"] != "Mine" || got.GetSubject() != "klaxon.in.default.alerts-v2" {
		t.Fatalf("first item: %v", got)
	}
	got, err = st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got.GetDelivery().GetNotification().GetTenant() != "default" || got.GetDelivery().GetOutcome() != "success" {
		t.Fatalf("second item: %v", got)
	}
}

func TestTailFilters(t *testing.T) {
	e := start(t, nil)
	c := ctx(t, "", "")
	st := e.tail(c, &adminv1.TailRequest{
		Sources: []string{"alertmanager"}, Receivers: []string{"oncall"}, Matchers: []string{`alertname=~"Keep.*"`},
	})
	e.publish(bus.IngestSubject("default", "alerts-v2"), alertEnvelope("default", "alerts-v2", "KeepWrongSource"))
	e.publish(bus.IngestSubject("default", "alertmanager"), alertEnvelope("default", "alertmanager", "Drop"))
	e.publish(bus.AuditSubject("default"), audit("default", "sink", "success", 1))
	oncall := audit("default", "oncall", "failed", 2)
	oncall.Notification.GroupLabels = map[string]string{"alertname": "KeepMe"}
	e.publish(bus.IngestSubject("default", "alertmanager"), alertEnvelope("default", "alertmanager", "KeepMe"))
	e.publish(bus.AuditSubject("default"), oncall)

	first, err := st.Recv()
	if err != nil || first.GetEnvelope().GetAlert().GetLabels()["alertname"] != "KeepMe" {
		t.Fatalf("first: %v %v", first, err)
	}
	second, err := st.Recv()
	if err != nil || second.GetDelivery().GetNotification().GetReceiver() != "oncall" {
		t.Fatalf("second: %v %v", second, err)
	}
}

func TestTailRejectsBadMatcher(t *testing.T) {
	e := start(t, nil)
	st, err := adminv1.NewAlertServiceClient(e.conn).Tail(ctx(t, "", ""), &adminv1.TailRequest{Matchers: []string{`a=~"("`}})
	if err == nil {
		_, err = st.Recv()
	}
	wantCode(t, err, codes.InvalidArgument)
}

func TestTailEndsWithTheClientDeadline(t *testing.T) {
	e := start(t, nil)
	c, cancel := context.WithTimeout(ctx(t, "", ""), 300*time.Millisecond)
	defer cancel()
	st := e.tail(c, &adminv1.TailRequest{})
	_, err := st.Recv()
	wantCode(t, err, codes.DeadlineExceeded)
}

// A tail opened while the server drains for shutdown ends Unavailable
// without saying it is live: klaxonctl, told live, took the tail as
// established, reset its backoff and printed "lost" and "reconnecting"
// again at once.
func TestTailOpenedWhileDrainingIsNeverLive(t *testing.T) {
	e := start(t, nil)
	e.srv.Drain()
	st, err := adminv1.NewAlertServiceClient(e.conn).Tail(ctx(t, "", ""), &adminv1.TailRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Recv()
	wantCode(t, err, codes.Unavailable)
	if md, _ := st.Header(); len(md.Get(admin.TailReadyHeader)) != 0 {
		t.Fatalf("a draining server said the tail is live: %v", md)
	}
}

// The real notifier's audit records carry only the notification's keys: a
// matcher-filtered tail still shows them after the notification they belong to.
func TestTailNotificationThenItsKeyOnlyDelivery(t *testing.T) {
	e := start(t, nil)
	st := e.tail(ctx(t, "", ""), &adminv1.TailRequest{Matchers: []string{`alertname="DiskFull"`}})
	other := &klaxonv1.Notification{Tenant: "default", Receiver: "sink", IdempotencyKey: "k-other",
		Alerts: []*klaxonv1.Alert{{Labels: map[string]string{"alertname": "Other"}}}}
	disk := &klaxonv1.Notification{Tenant: "default", Receiver: "sink", IdempotencyKey: "k-disk",
		Alerts: []*klaxonv1.Alert{{Labels: map[string]string{"alertname": "DiskFull"}}}}
	e.publish(bus.NotifySubject("default", "sink"), other)
	e.publish(bus.AuditSubject("default"), &klaxonv1.AuditRecord{Outcome: "success",
		Notification: &klaxonv1.Notification{Tenant: "default", Receiver: "sink", IdempotencyKey: "k-other"}})
	e.publish(bus.NotifySubject("default", "sink"), disk)
	e.publish(bus.AuditSubject("default"), &klaxonv1.AuditRecord{Outcome: "success",
		Notification: &klaxonv1.Notification{Tenant: "default", Receiver: "sink", IdempotencyKey: "k-disk"}})

	first, err := st.Recv()
	if err != nil || first.GetNotification().GetIdempotencyKey() != "k-disk" || first.GetSubject() != "klaxon.out.default.sink" {
		t.Fatalf("first: %v %v", first, err)
	}
	second, err := st.Recv()
	if err != nil || second.GetDelivery().GetNotification().GetIdempotencyKey() != "k-disk" {
		t.Fatalf("second: %v %v", second, err)
	}
}
