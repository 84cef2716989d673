package runner_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
)

// eksRules is rules/default/slos.yml's eks-api-calls: a ratio SLI counted
// from the event stream. A 7d period scales the workbook's windows to 14m/1m
// (14.4×), 84m/7m (6×) and 1008m/84m (1×); the budget is exactly 1/100.
const eksRules = `
slos:
  - name: eks-api-calls
    objective: 99
    period: 7d
    events:
      total: ['kind="cloudtrail"', 'eventSource="eks.amazonaws.com"']
      bad: ['errorCode=~".+"']
    min_events: 20
`

// cloudTrail is the envelope the receiver builds from one CloudTrail record
// (via EventBridge or SNS): an event of kind cloudtrail, its eventID as the
// event id and the envelope id derived from it, the record's fields as labels
// (errorCode only on failed calls).
func cloudTrail(eventID, eventSource, errorCode string, at time.Time) *klaxonv1.Envelope {
	labels := map[string]string{"eventSource": eventSource, "eventName": "DescribeCluster", "awsRegion": "eu-west-1"}
	if errorCode != "" {
		labels["errorCode"] = errorCode
	}
	return &klaxonv1.Envelope{Tenant: "default", Source: "eventbridge", Id: "ct|" + eventID, ReceivedAt: timestamppb.New(at),
		Payload: &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{Kind: "cloudtrail", Id: eventID, Time: timestamppb.New(at), Labels: labels}}}
}

// TestRatioFromMatchedCloudTrailEvents: good and bad are counted from the
// CloudTrail events the SLO's matchers select, a redelivered envelope counts
// once, and the 14.4× page fires on the bad event that crosses its threshold
// — not one event earlier, which a double-counted redelivery would cause.
func TestRatioFromMatchedCloudTrailEvents(t *testing.T) {
	f := newFixtureWith(t, eksRules)
	var sent []*klaxonv1.Envelope
	send := func(env *klaxonv1.Envelope) { f.process(env); sent = append(sent, env) }

	// Ten minutes of ten successful EKS calls each: 100 good events.
	for m := 0; m < 10; m++ {
		at := t0.Add(time.Duration(m) * time.Minute)
		for i := 0; i < 10; i++ {
			send(cloudTrail(fmt.Sprintf("ok-%d-%d", m, i), "eks.amazonaws.com", "", at))
		}
	}
	// Not part of the SLI: another service's failure, and an event of another
	// kind that happens to carry the same labels.
	now := t0.Add(10 * time.Minute)
	f.process(cloudTrail("ec2-denied", "ec2.amazonaws.com", "AccessDenied", now))
	other := cloudTrail("eb-only", "eks.amazonaws.com", "Throttling", now)
	other.GetEvent().Kind = "eventbridge"
	f.process(other)

	// 16 failed calls in minute 10: 16 of 116 in the 14-minute window is
	// 13.79%, below 14.4% (the 6× and 1× rules already fire).
	for i := 0; i < 16; i++ {
		send(cloudTrail(fmt.Sprintf("denied-%d", i), "eks.amazonaws.com", "AccessDeniedException", now))
	}
	f.tick(now)
	const page = "eks-api-calls/page/14m-1m/firing"
	got := f.burnAlerts()
	if slices.Contains(got, page) || !slices.Contains(got, "eks-api-calls/page/1h24m-7m/firing") {
		t.Fatalf("after 16 bad of 116: %v", got)
	}
	assertCounts(t, f, now, 116, 16)

	// JetStream redelivers everything (a crash before the acks): nothing is
	// counted again, so the page still does not fire.
	for _, env := range sent {
		f.process(env)
	}
	f.tick(now.Add(time.Second))
	if got := f.burnAlerts(); slices.Contains(got, page) {
		t.Fatalf("a redelivery was counted again and fired the page: %v", got)
	}
	assertCounts(t, f, now, 116, 16)

	// The 17th failure: 17 of 117 is 14.53% over 14m and 100% over 1m.
	f.process(cloudTrail("denied-16", "eks.amazonaws.com", "AccessDeniedException", now))
	f.tick(now.Add(2 * time.Second))
	if got := f.burnAlerts(); !slices.Contains(got, page) {
		t.Fatalf("17 bad of 117 must page at 14.4× over 14m and 1m: %v", got)
	}
	assertCounts(t, f, now, 117, 17)
	st, err := f.r.Status(t.Context(), "default", "eks-api-calls", now)
	if err != nil {
		t.Fatal(err)
	}
	if b := st[0].Burn[0]; !b.Firing || b.LongWindow != "14m" || b.ShortWindow != "1m" || b.ShortBurnRate != 100 {
		t.Fatalf("burn status %+v", b)
	}
}

func assertCounts(t *testing.T, f *fixture, now time.Time, total, bad int64) {
	t.Helper()
	st, err := f.r.Status(t.Context(), "default", "eks-api-calls", now)
	if err != nil {
		t.Fatal(err)
	}
	if b := st[0].Budgets[0]; b.Total != total || b.Consumed != bad {
		t.Fatalf("rolling budget counts %d events, %d bad; want %d, %d", b.Total, b.Consumed, total, bad)
	}
}
