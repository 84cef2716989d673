package notify_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/services/notify"
)

// TestRateLimitSchedule reads the decisions of a receiver's limiter on a
// fixed clock (rate.Limiter takes the time as an argument): with limit L/s
// and burst B, notification k (1-based) may go at once for k <= B and only
// (k-B)/L after the first otherwise, so N > B notifications take at least
// (N-B)/L and no window of w seconds holds more than B + L*w of them.
func TestRateLimitSchedule(t *testing.T) {
	const (
		limit = 5.0 // per second: one every 200ms after the burst
		burst = 3
		n     = 13
	)
	h := start(t, notify.Config{RateLimit: limit, Burst: burst}, newTarget(t, 0, 0))
	l := h.p.LimiterFor("default", "team-a")
	if l != h.p.LimiterFor("default", "team-a") {
		t.Fatal("a receiver must keep one limiter")
	}
	t0 := time.Now().Add(time.Hour) // later than the limiter's own start: a full bucket
	var at []time.Duration
	for k := 1; k <= n; k++ {
		r := l.ReserveN(t0, 1)
		if !r.OK() {
			t.Fatalf("notification %d: no reservation possible", k)
		}
		d := r.DelayFrom(t0)
		want := time.Duration(max(0, k-burst)) * time.Duration(float64(time.Second)/limit)
		if diff := d - want; diff < -time.Millisecond || diff > time.Millisecond {
			t.Fatalf("notification %d may go after %v, want %v", k, d, want)
		}
		at = append(at, d)
	}
	if last, least := at[n-1], time.Duration(float64(n-burst)/limit*float64(time.Second)); last < least-time.Millisecond {
		t.Fatalf("%d notifications in %v, faster than %v", n, last, least)
	}
	for i := range at {
		for j := i; j < len(at); j++ {
			w := (at[j] - at[i]).Seconds()
			if got, most := float64(j-i+1), burst+limit*w+1e-6; got > most {
				t.Fatalf("%v notifications within %.3fs, the limit allows %.3f", got, w, most)
			}
		}
	}

	// Another receiver, and the same receiver name of another tenant, have
	// their own buckets: team-a's backlog does not delay them.
	for _, k := range [][2]string{{"default", "team-b"}, {"other", "team-a"}} {
		for i := 1; i <= burst; i++ {
			if d := h.p.LimiterFor(k[0], k[1]).ReserveN(t0, 1).DelayFrom(t0); d != 0 {
				t.Fatalf("%s/%s notification %d delayed %v by another receiver's traffic", k[0], k[1], i, d)
			}
		}
	}
}

// TestRateLimitZeroIsUnlimited: --notify.rate-limit=0 means no limit.
func TestRateLimitZeroIsUnlimited(t *testing.T) {
	h := start(t, notify.Config{RateLimit: 0, Burst: 1}, newTarget(t, 0, 0))
	l := h.p.LimiterFor("default", "team-a")
	t0 := time.Now()
	for k := 1; k <= 1000; k++ {
		if d := l.ReserveN(t0, 1).DelayFrom(t0); d != 0 {
			t.Fatalf("notification %d delayed %v with no limit", k, d)
		}
	}
}

// TestRateLimitGatesDelivery: the pipeline asks the limiter before it sends.
// With a burst of 3 and one token per 1000 s, three notifications go out at
// once and the fourth is not sent within its 5 s deadline: the limiter
// refuses at once (the wait would pass the deadline), the target sees no
// request, and the failure is retryable (a redelivery sends it later).
func TestRateLimitGatesDelivery(t *testing.T) {
	tg := newTarget(t, 0, 0)
	h := start(t, notify.Config{RateLimit: 0.001, Burst: 3}, tg)
	deliver := func(i int) (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return h.p.Deliver(ctx, notification(fmt.Sprintf("rl-%d", i)))
	}
	for i := 1; i <= 3; i++ {
		if retry, err := deliver(i); err != nil {
			t.Fatalf("notification %d within the burst: retry=%v err=%v", i, retry, err)
		}
		if got := tg.accepted.Load(); got != int32(i) {
			t.Fatalf("after %d notifications the target accepted %d", i, got)
		}
	}
	start := time.Now()
	retry, err := deliver(4)
	if err == nil || !retry {
		t.Fatalf("notification 4 beyond the burst: retry=%v err=%v, want a retryable rate-limit error", retry, err)
	}
	if got := tg.requests.Load(); got != 3 {
		t.Fatalf("the target got %d requests, want 3: the fourth must wait for the limiter", got)
	}
	if waited := time.Since(start); waited > 4*time.Second {
		t.Fatalf("the pipeline waited %v for a token it could not get before the deadline", waited)
	}
}

// TestRateLimitCountsNotificationsNotIntegrations: a receiver with two
// integrations gets its whole rate — a notification takes one token, however
// many integrations deliver it.
func TestRateLimitCountsNotificationsNotIntegrations(t *testing.T) {
	a, b := newTarget(t, 0, 0), newTarget(t, 0, 0)
	h := start(t, notify.Config{RateLimit: 0.001, Burst: 2}, a, b)
	for i := 1; i <= 2; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		retry, err := h.p.Deliver(ctx, notification(fmt.Sprintf("rl2-%d", i)))
		cancel()
		if err != nil {
			t.Fatalf("notification %d within the burst of 2: retry=%v err=%v", i, retry, err)
		}
	}
	if a.accepted.Load() != 2 || b.accepted.Load() != 2 {
		t.Fatalf("accepted %d and %d, want both integrations to deliver both notifications", a.accepted.Load(), b.accepted.Load())
	}
}
