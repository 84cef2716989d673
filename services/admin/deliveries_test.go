package admin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/admin"
	"github.com/klaxon-sh/klaxon/services/bus"
)

func audit(tenant, receiver, outcome string, i int) *klaxonv1.AuditRecord {
	return &klaxonv1.AuditRecord{
		Notification: &klaxonv1.Notification{Tenant: tenant, Receiver: receiver, GroupKey: fmt.Sprintf("{}:{n=\"%d\"}", i)},
		Integration:  "webhook[0]",
		Outcome:      outcome,
		At:           timestamppb.New(time.Unix(1700000000+int64(i), 0)),
	}
}

func TestListDeliveriesNewestFirstFilteredByTenant(t *testing.T) {
	e := start(t, nil)
	dc := adminv1.NewDeliveryServiceClient(e.conn)
	c := ctx(t, "default", "")

	empty, err := dc.ListDeliveries(c, &adminv1.ListDeliveriesRequest{})
	if err != nil || len(empty.GetDeliveries()) != 0 {
		t.Fatalf("empty stream: %v %v", empty, err)
	}
	var failedSeq uint64
	for i := range 300 {
		e.publish(bus.AuditSubject("team-a"), audit("team-a", "sink", "success", i))
		outcome := "success"
		if i == 7 {
			outcome = "failed"
		}
		seq := e.publish(bus.AuditSubject("default"), audit("default", []string{"sink", "oncall"}[i%2], outcome, i))
		if i == 7 {
			failedSeq = seq
		}
	}

	got, err := dc.ListDeliveries(c, &adminv1.ListDeliveriesRequest{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.GetDeliveries()) != 5 {
		t.Fatalf("got %d deliveries, want 5", len(got.GetDeliveries()))
	}
	for i, d := range got.GetDeliveries() {
		if d.GetRecord().GetNotification().GetTenant() != "default" {
			t.Fatalf("another tenant's delivery: %v", d)
		}
		if want := fmt.Sprintf("{}:{n=\"%d\"}", 299-i); d.GetRecord().GetNotification().GetGroupKey() != want {
			t.Fatalf("delivery %d is %s, want %s (newest first)", i, d.GetRecord().GetNotification().GetGroupKey(), want)
		}
	}

	// A rare match deep in the stream is found by widening the window.
	failed, err := dc.ListDeliveries(c, &adminv1.ListDeliveriesRequest{Outcome: "failed"})
	if err != nil || len(failed.GetDeliveries()) != 1 || failed.GetDeliveries()[0].GetSeq() != failedSeq {
		t.Fatalf("failed deliveries: %v %v", failed, err)
	}
	oncall, err := dc.ListDeliveries(c, &adminv1.ListDeliveriesRequest{Receiver: "oncall", Limit: 1000})
	if err != nil || len(oncall.GetDeliveries()) != 150 {
		t.Fatalf("oncall deliveries: %d %v", len(oncall.GetDeliveries()), err)
	}
	all, err := dc.ListDeliveries(ctx(t, "*", ""), &adminv1.ListDeliveriesRequest{Limit: 1000})
	if err != nil || len(all.GetDeliveries()) != 600 {
		t.Fatalf("all tenants: %d %v", len(all.GetDeliveries()), err)
	}
}

func deadLetter(tenant, receiver string) *klaxonv1.DeadLetter {
	return &klaxonv1.DeadLetter{
		Notification: &klaxonv1.Notification{Tenant: tenant, Receiver: receiver, GroupKey: "{}:{}", IdempotencyKey: "k-" + tenant, Attempt: 5},
		Reason:       "server_error", Error: "503 Service Unavailable", Attempts: 5,
		FailedAt: timestamppb.New(time.Unix(1700000000, 0)),
	}
}

func TestDeadLettersListAndReplay(t *testing.T) {
	e := start(t, nil)
	dc := adminv1.NewDeliveryServiceClient(e.conn)
	c := ctx(t, "default", "")
	mine := e.publish(bus.DLQSubject("default", "sink"), deadLetter("default", "sink"))
	e.publish(bus.DLQSubject("default", "oncall"), deadLetter("default", "oncall"))
	theirs := e.publish(bus.DLQSubject("team-a", "sink"), deadLetter("team-a", "sink"))

	list, err := dc.ListDeadLetters(c, &adminv1.ListDeadLettersRequest{Receiver: "sink"})
	if err != nil || len(list.GetDeadLetters()) != 1 || list.GetDeadLetters()[0].GetSeq() != mine ||
		list.GetDeadLetters()[0].GetLetter().GetReason() != "server_error" {
		t.Fatalf("list: %v %v", list, err)
	}

	_, err = dc.ReplayDeadLetter(c, &adminv1.ReplayDeadLetterRequest{Seq: theirs})
	wantCode(t, err, codes.NotFound)
	_, err = dc.ReplayDeadLetter(c, &adminv1.ReplayDeadLetterRequest{})
	wantCode(t, err, codes.InvalidArgument)

	rp, err := dc.ReplayDeadLetter(c, &adminv1.ReplayDeadLetterRequest{Seq: mine})
	if err != nil || rp.GetNotification().GetReceiver() != "sink" || rp.GetNotification().GetAttempt() != 0 {
		t.Fatalf("replay: %v %v", rp, err)
	}
	// The notification is back on NOTIFY for the notifier to deliver.
	st, err := e.bus.JS.Stream(c, bus.StreamNotify)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetLastMsgForSubject(c, bus.NotifySubject("default", "sink")); err != nil {
		t.Fatalf("replayed notification not on NOTIFY: %v", err)
	}
	_, err = dc.ReplayDeadLetter(c, &adminv1.ReplayDeadLetterRequest{Seq: mine})
	wantCode(t, err, codes.NotFound)

	left, err := dc.ListDeadLetters(c, &adminv1.ListDeadLettersRequest{})
	if err != nil || len(left.GetDeadLetters()) != 1 || left.GetDeadLetters()[0].GetLetter().GetNotification().GetReceiver() != "oncall" {
		t.Fatalf("after replay: %v %v", left, err)
	}
	everyone, err := dc.ListDeadLetters(ctx(t, "*", ""), &adminv1.ListDeadLettersRequest{Receiver: "sink"})
	if err != nil || len(everyone.GetDeadLetters()) != 1 || everyone.GetDeadLetters()[0].GetSeq() != theirs {
		t.Fatalf("all tenants: %v %v", everyone, err)
	}

	// A letter whose group delivered a newer notification since (the
	// notifier marked it so in the notification log) is not sent again: the
	// caller hears why, and the letter goes.
	nflog, err := e.bus.KV(c, bus.BucketNotifyLog, time.Hour) // as a notifier opens it
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nflog.Put(c, "k-default.webhook-0", []byte("superseded 2026-12-04T10:00:00Z by k-next")); err != nil {
		t.Fatal(err)
	}
	_, err = dc.ReplayDeadLetter(c, &adminv1.ReplayDeadLetterRequest{Seq: left.GetDeadLetters()[0].GetSeq()})
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(err.Error(), "webhook-0 at 2026-12-04T10:00:00Z") {
		t.Fatalf("superseded replay does not say by what: %v", err)
	}
	if left, err := dc.ListDeadLetters(c, &adminv1.ListDeadLettersRequest{}); err != nil || len(left.GetDeadLetters()) != 0 {
		t.Fatalf("superseded letter left in the DLQ: %v %v", left, err)
	}
}

// A call without a deadline gets the server's default one, so a slow bus
// read ends with DeadlineExceeded instead of holding a handler forever.
func TestCallsWithoutDeadlineGetTheDefault(t *testing.T) {
	e := start(t, func(c *admin.Config) { c.DefaultTimeout = time.Nanosecond })
	e.publish(bus.AuditSubject("default"), audit("default", "sink", "success", 1))
	_, err := adminv1.NewDeliveryServiceClient(e.conn).ListDeliveries(context.Background(), &adminv1.ListDeliveriesRequest{})
	wantCode(t, err, codes.DeadlineExceeded)
}
