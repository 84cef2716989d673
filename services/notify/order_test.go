package notify_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/notify"
)

// statusLog is a webhook endpoint that records the status of every body it
// accepts, in arrival order.
type statusLog struct {
	mu  sync.Mutex
	got []string
}

func newStatusLog(t *testing.T) (*statusLog, *target) {
	sl := &statusLog{}
	tg := &target{}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg amwebhook.Message
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		sl.mu.Lock()
		sl.got = append(sl.got, msg.Status)
		sl.mu.Unlock()
		tg.accepted.Add(1)
	}))
	t.Cleanup(tg.srv.Close)
	return sl, tg
}

func (sl *statusLog) statuses() []string {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return append([]string(nil), sl.got...)
}

// resolutionOf is the notification that resolves first's alert, chained
// to it as the engine chains a group's notifications.
func resolutionOf(first *klaxonv1.Notification, key string) *klaxonv1.Notification {
	n := notification(key)
	n.Status = klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED
	n.Alerts[0].Status = klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED
	n.Alerts[0].EndsAt = timestamppb.Now()
	n.PreviousKey, n.PreviousAt = first.IdempotencyKey, first.CreatedAt
	return n
}

// The race TestHAKill saw: a group's resolve reaches a notifier (another
// replica, or this one while the trigger waits out a retry backoff) before
// its trigger went out. PagerDuty drops a resolve for an unknown dedup_key
// and then opens the incident for good; so the resolve waits its turn.
func TestResolveWaitsForItsTrigger(t *testing.T) {
	sl, tg := newStatusLog(t)
	h := start(t, notify.Config{}, tg)
	trigger := notification("k-trigger")
	h.publish(t, resolutionOf(trigger, "k-resolve"), "m-resolve")
	held := func() float64 { return testutil.ToFloat64(h.p.Metrics().Held.WithLabelValues("webhook")) }
	eventually(t, "the resolve to be held back", func() bool { return held() >= 1 })
	if got := sl.statuses(); len(got) != 0 {
		t.Fatalf("sent before its trigger: %v", got)
	}
	h.publish(t, trigger, "m-trigger")
	eventually(t, "both notifications", func() bool { return tg.accepted.Load() == 2 })
	if got := sl.statuses(); got[0] != "firing" || got[1] != "resolved" {
		t.Fatalf("delivered %v, want firing then resolved", got)
	}
	if dls := deadLetters(t, h.b); len(dls) != 0 {
		t.Fatalf("waiting counted as failed attempts: %d dead letters", len(dls))
	}
}

// A predecessor that went to the dead-letter queue holds nothing up; one
// that never comes holds its successor only for OrderWait.
func TestHoldEndsWithTheDeadLetterOrOrderWait(t *testing.T) {
	tg := newTarget(t, 1, http.StatusBadRequest) // the first request fails for good
	h := start(t, notify.Config{Attempts: 1, MaxDeliver: 2, OrderWait: 2 * time.Second}, tg)
	first := notification("k-first")
	h.publish(t, first, "m-first")
	// The counter moves once the dead letter is stored and marked in the
	// notification log (the stream shows it a moment before the mark).
	eventually(t, "the first dead-lettered", func() bool { return testutil.CollectAndCount(h.p.Metrics().DeadLetters) == 1 })
	h.publish(t, resolutionOf(first, "k-second"), "m-second")
	eventually(t, "the second sent", func() bool { return tg.accepted.Load() == 1 })
	if held := testutil.ToFloat64(h.p.Metrics().Held.WithLabelValues("webhook")); held != 0 {
		t.Fatalf("held %v times behind a dead letter", held)
	}

	lost := notification("k-lost") // never published
	began := time.Now()
	h.publish(t, resolutionOf(lost, "k-orphan"), "m-orphan")
	eventually(t, "the orphan sent after OrderWait", func() bool { return tg.accepted.Load() == 2 })
	if waited := time.Since(began); waited < time.Second {
		t.Fatalf("orphan sent after %v, without waiting for its predecessor", waited)
	}
}

// An integration dead-lettered on its own, while its sibling is retried,
// holds nothing up there: the group's next notification goes out through it
// at once, not after OrderWait, and waits only where its predecessor does.
func TestHoldEndsForAnIntegrationDeadLetteredAlone(t *testing.T) {
	bad := newTarget(t, 1, http.StatusBadRequest) // the first request fails for good
	flaky := newTarget(t, -1, http.StatusServiceUnavailable)
	h := start(t, notify.Config{Attempts: 1, MaxDeliver: 1000, OrderWait: time.Minute}, bad, flaky)
	first := notification("k-first")
	h.publish(t, first, "m-first")
	// Counted once the dead letter is stored and marked.
	eventually(t, "the first dead-lettered for its 400", func() bool { return testutil.CollectAndCount(h.p.Metrics().DeadLetters) == 1 })
	h.publish(t, resolutionOf(first, "k-second"), "m-second")
	eventually(t, "the second sent where the first was dead-lettered", func() bool { return bad.accepted.Load() == 1 })
	if n := flaky.accepted.Load(); n != 0 {
		t.Fatalf("the failing integration accepted %d", n)
	}
	flaky.setFail(0)
	eventually(t, "both sent through the other integration", func() bool { return flaky.accepted.Load() == 2 })
	if n := bad.requests.Load(); n != 2 {
		t.Fatalf("the dead-lettered integration got %d requests, want the first's 400 and the second", n)
	}
}
