package notify_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/notify"
)

// replay replays the dead letter of the notification with idempotency key
// key, and returns Replay's error.
func replay(t *testing.T, h *harness, key string) error {
	t.Helper()
	for _, dl := range deadLetters(t, h.b) {
		if dl.Notification.IdempotencyKey == key {
			_, err := notify.Replay(context.Background(), h.b, "default", dl.Seq)
			return err
		}
	}
	t.Fatalf("no dead letter of %s", key)
	return nil
}

// deadLettered is how many dead letters h stored for reason, counted once
// each is marked in the notification log (the DLQ shows it a moment
// before: a successor published then would wait for the mark).
func deadLettered(h *harness, reason notify.Reason) float64 {
	return testutil.ToFloat64(h.p.Metrics().DeadLetters.WithLabelValues("team-a", string(reason)))
}

// supersededEventually waits until the notification log marks the delivery
// at key superseded: the notifier writes the mark after its send is
// recorded, a moment after the receiver has the request.
func supersededEventually(t *testing.T, h *harness, key string) {
	t.Helper()
	kv, err := h.b.JS.KeyValue(context.Background(), bus.BucketNotifyLog)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, key+" marked superseded", func() bool {
		e, err := kv.Get(context.Background(), key)
		return err == nil && strings.HasPrefix(string(e.Value()), "superseded ")
	})
}

// A trigger dead-lettered while its receiver was down, whose resolve was
// delivered once the receiver came back, is not sent by its replay: a
// trigger after its resolve would open a PagerDuty incident that nothing
// resolves. Replay says so and removes the letter; so it does for an older
// trigger of the same group, dead-lettered before that one.
func TestReplayOfATriggerAfterItsResolveSendsNothing(t *testing.T) {
	tg := newTarget(t, 2, http.StatusBadRequest) // the first two fail for good
	h := start(t, notify.Config{Attempts: 1, MaxDeliver: 2}, tg)
	first := notification("k-first")
	h.publish(t, first, "m-first")
	eventually(t, "the first dead-lettered", func() bool { return deadLettered(h, notify.ReasonClientError) == 1 })
	second := notification("k-second") // more alerts of the group, still firing
	second.PreviousKey, second.PreviousAt = first.IdempotencyKey, first.CreatedAt
	h.publish(t, second, "m-second")
	eventually(t, "the second dead-lettered", func() bool { return deadLettered(h, notify.ReasonClientError) == 2 })
	h.publish(t, resolutionOf(second, "k-resolve"), "m-resolve")
	eventually(t, "the resolve sent", func() bool { return tg.accepted.Load() == 1 })
	supersededEventually(t, h, "k-first.webhook-0")

	for _, key := range []string{"k-second", "k-first"} {
		if err := replay(t, h, key); !errors.Is(err, notify.ErrSuperseded) {
			t.Fatalf("replay of %s: %v, want it superseded", key, err)
		}
	}
	if dls := deadLetters(t, h.b); len(dls) != 0 {
		t.Fatalf("%d superseded dead letters left in the DLQ", len(dls))
	}
	// A notification of another group, published after the replays, is
	// the next request the receiver gets.
	h.publish(t, notification("k-other"), "m-other")
	eventually(t, "the other group's notification", func() bool { return tg.accepted.Load() == 2 })
	if n := tg.requests.Load(); n != 4 {
		t.Fatalf("receiver got %d requests, want the two that failed, the resolve and the other group's", n)
	}
}

// A trigger still dead where its replay would send it is sent there, and
// skipped where the group's resolve was delivered since.
func TestReplaySendsOnlyWhereNothingNewerWasDelivered(t *testing.T) {
	// Failures for good (400), which leave the integrations' breakers
	// closed: a 5xx opened them for a moment, and the resolve waited.
	a := newTarget(t, 1, http.StatusBadRequest) // refused the trigger only
	b := newTarget(t, 2, http.StatusBadRequest) // refused both
	h := start(t, notify.Config{Attempts: 1, MaxDeliver: 1}, a, b)
	first := notification("k-first")
	h.publish(t, first, "m-first")
	eventually(t, "the trigger dead-lettered", func() bool { return deadLettered(h, notify.ReasonClientError) == 1 })
	h.publish(t, resolutionOf(first, "k-resolve"), "m-resolve")
	eventually(t, "the resolve dead-lettered where it failed", func() bool { return deadLettered(h, notify.ReasonClientError) == 2 })
	if n := a.accepted.Load(); n != 1 {
		t.Fatalf("the receiver that came back accepted %d, want the resolve", n)
	}
	supersededEventually(t, h, "k-first.webhook-0")

	if err := replay(t, h, "k-first"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the trigger sent where it was still due", func() bool { return b.accepted.Load() == 1 })
	// At least once: a replay sent back to wait passes here again.
	eventually(t, "the trigger skipped where the resolve went", func() bool {
		return testutil.ToFloat64(h.p.Metrics().Suppressed.WithLabelValues("webhook", "superseded")) >= 1
	})
	if n := a.requests.Load(); n != 2 {
		t.Fatalf("the receiver that has the resolve got %d requests, want the failed trigger and the resolve", n)
	}
}

// The dead letter of one integration, parked while its sibling was retried,
// is superseded by the group's later notification delivered through it.
func TestParkedLetterIsSupersededByTheNextNotification(t *testing.T) {
	bad := newTarget(t, 1, http.StatusBadRequest) // the first request fails for good
	flaky := newTarget(t, -1, http.StatusServiceUnavailable)
	h := start(t, notify.Config{Attempts: 1, MaxDeliver: 1000}, bad, flaky)
	first := notification("k-first")
	h.publish(t, first, "m-first")
	eventually(t, "the first dead-lettered for its 400", func() bool { return testutil.CollectAndCount(h.p.Metrics().DeadLetters) == 1 })
	h.publish(t, resolutionOf(first, "k-second"), "m-second")
	eventually(t, "the second sent where the first was dead-lettered", func() bool { return bad.accepted.Load() == 1 })
	supersededEventually(t, h, "k-first.webhook-0")
	if err := replay(t, h, "k-first"); !errors.Is(err, notify.ErrSuperseded) {
		t.Fatalf("replay of the parked letter: %v, want it superseded", err)
	}
	flaky.setFail(0)
	eventually(t, "both sent through the other integration", func() bool { return flaky.accepted.Load() == 2 })
	if n := bad.requests.Load(); n != 2 {
		t.Fatalf("the integration with the parked letter got %d requests, want the first's 400 and the second", n)
	}
}
