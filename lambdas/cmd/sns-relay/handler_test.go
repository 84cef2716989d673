package main

import (
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/lambdas/alerting"
)

// An API v2 alert array published to SNS (as Prometheus sends them: firing
// alerts carry an endsAt ahead) falls back to a page for the firing ones
// and a resolve only for those whose endsAt has passed. Before, any endsAt
// was taken for resolved, and with the receiver down the fallback resolved
// an incident that never opened instead of paging.
func TestAlertArrayFallbackFiresUntilEndsAtPasses(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := &Handler{Now: func() time.Time { return now }}
	msg := `[{"labels":{"alertname":"Firing"},"endsAt":"2026-03-01T12:04:00Z"},
	         {"labels":{"alertname":"NoEnd"}},
	         {"labels":{"alertname":"Resolved"},"endsAt":"2026-03-01T11:59:00Z"}]`
	d, err := h.mapRecord(&snsEntity{Message: msg, MessageID: "m1", TopicArn: "arn:aws:sns:us-east-1:123456789012:alerts"})
	if err != nil {
		t.Fatal(err)
	}
	want := []alerting.Status{alerting.Firing, alerting.Firing, alerting.Resolved}
	if len(d.notices) != len(want) {
		t.Fatalf("%d notices, want %d", len(d.notices), len(want))
	}
	for i, n := range d.notices {
		if n.Status != want[i] {
			t.Errorf("notice %d (%s): status %v, want %v", i, n.Summary, n.Status, want[i])
		}
	}
}

// FuzzMapRecord: no SNS message makes the relay panic. Whatever it chooses
// is a delivery with a body and, for the fallback, one notice per alert
// (or one for the whole message), so a receiver outage still pages.
func FuzzMapRecord(f *testing.F) {
	for _, s := range []string{
		`{"version":"4","status":"firing","receiver":"r","groupKey":"{}:{}","alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":"2026-03-01T11:00:00Z"}]}`,
		`{"alerts":[{"status":"resolved","labels":{}}]}`,
		`[{"labels":{"alertname":"A"},"endsAt":"2026-03-01T12:04:00Z"}]`,
		`[{"labels":{}}]`, `[]`, `{}`, `not json`, ``,
	} {
		f.Add(s, "m1", "arn:aws:sns:us-east-1:123456789012:alerts")
	}
	f.Fuzz(func(t *testing.T, msg, id, topic string) {
		h := &Handler{Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }}
		d, err := h.mapRecord(&snsEntity{Message: msg, MessageID: id, TopicArn: topic})
		if err != nil {
			return
		}
		if len(d.body) == 0 || d.path == "" || len(d.notices) == 0 {
			t.Fatalf("message %q: delivery %+v", msg, d)
		}
	})
}
