package notify_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amconfig "github.com/prometheus/alertmanager/config"
	amcommoncfg "github.com/prometheus/alertmanager/config/common"
	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/notify"
	"github.com/klaxon-sh/klaxon/services/notify/notifytest"
	"github.com/klaxon-sh/klaxon/services/notify/webhook"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// twoReceivers runs a pipeline with receivers "dead" (its webhook answers
// 500, always) and "team-a" (answers 200).
func twoReceivers(t *testing.T, cfg notify.Config) (*harness, *target, *target) {
	t.Helper()
	dead := newTarget(t, -1, 500)
	h, ok := twoReceiversAt(t, cfg, dead.srv.URL)
	return h, dead, ok
}

// twoReceiversAt runs a pipeline with receivers "dead" (a webhook at
// deadURL) and "team-a" (answers 200).
func twoReceiversAt(t *testing.T, cfg notify.Config, deadURL string) (*harness, *target) {
	t.Helper()
	ok := newTarget(t, 0, 0)
	tmpl := notifytest.Template(t)
	h := runPipeline(t, cfg, func(_ *ruleset.Tenant, receiver string, log *slog.Logger) ([]notify.Integration, error) {
		url := ok.srv.URL
		if receiver == "dead" {
			url = deadURL
		}
		return webhookAt(tmpl, url, log)
	}, "dead", "team-a")
	return h, ok
}

// runPipeline runs a pipeline for tenant "default" with receivers, their
// integrations made by build, until the test ends.
func runPipeline(t *testing.T, cfg notify.Config, build notify.Builder, receivers ...string) *harness {
	t.Helper()
	b := bustest.New(t)
	cfgs := make([]amconfig.Receiver, 0, len(receivers))
	for _, r := range receivers {
		cfgs = append(cfgs, amconfig.Receiver{Name: r})
	}
	tenant := &ruleset.Tenant{Name: "default", Config: &amconfig.Config{Receivers: cfgs}}
	holder := ruleset.NewStaticHolder(&ruleset.Set{Tenants: map[string]*ruleset.Tenant{"default": tenant}})
	ctx, cancel := context.WithCancel(context.Background())
	p, err := notify.NewPipeline(ctx, cfg, b, holder, build, bustest.Logger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &harness{b: b, p: p}
}

// webhookAt is one webhook integration posting to url.
func webhookAt(tmpl *template.Template, url string, log *slog.Logger) ([]notify.Integration, error) {
	n, err := webhook.New(&amwebhook.WebhookConfig{URL: amcommoncfg.SecretTemplateURL(url)}, tmpl, log)
	if err != nil {
		return nil, err
	}
	return []notify.Integration{{Name: "webhook", SendResolved: true, Notifier: n}}, nil
}

// A receiver that fails for good, with more notifications waiting to be
// retried than the consumer lets be pending, does not stop the others'
// notifications: each waiting one is deferred in NOTIFY until its retry is
// due, and holds no place on the consumer. Before, every one waited as a
// NAK'd message, still pending; once MaxAckPending of them did (1024 by
// default: a dead Slack in a storm) the consumer delivered nothing more to
// any receiver until they went to the dead-letter queue, after hours of
// backoff.
func TestDeadReceiverDoesNotHoldUpOthersPastMaxAckPending(t *testing.T) {
	cfg := notify.Config{MaxAckPending: 8, Attempts: 1, AttemptTimeout: time.Second,
		MinBackoff: time.Second, MaxBackoff: 2 * time.Second, MaxDeliver: 1000}
	h, dead, ok := twoReceivers(t, cfg)
	for i := range 24 { // three times MaxAckPending
		n := notification(fmt.Sprintf("dead-%d", i))
		n.Receiver, n.GroupKey = "dead", fmt.Sprintf(`{}:{alertname="X%d"}`, i)
		h.publish(t, n, n.IdempotencyKey)
	}
	eventually(t, "the dead webhook tried as often as notifications may be pending", func() bool { return dead.requests.Load() >= 8 })
	h.publish(t, notification("ok"), "ok")
	eventually(t, "team-a's notification delivered", func() bool { return ok.accepted.Load() == 1 })
	deferred := func() float64 { return testutil.ToFloat64(h.p.Metrics().Deferred) }
	eventually(t, "every dead notification deferred", func() bool { return deferred() >= 24 })
	// Deferred notifications come back: the dead webhook is tried again.
	tried := dead.requests.Load()
	eventually(t, "a deferred notification retried", func() bool { return dead.requests.Load() > tried })
}

// A deferred notification keeps count of its attempts: it comes back as a
// new message, and still reaches the dead-letter queue after MaxDeliver.
func TestDeferredNotificationKeepsItsAttempts(t *testing.T) {
	cfg := notify.Config{Attempts: 1, AttemptTimeout: time.Second,
		MinBackoff: time.Second, MaxBackoff: 2 * time.Second, MaxDeliver: 3}
	h, dead, _ := twoReceivers(t, cfg)
	n := notification("dead")
	n.Receiver = "dead"
	h.publish(t, n, n.IdempotencyKey)
	var dls []notify.DeadLetter
	eventually(t, "the notification dead-lettered", func() bool { dls = deadLetters(t, h.b); return len(dls) == 1 })
	if got := dls[0].Attempts; got != 3 {
		t.Errorf("dead letter after %d attempts, want MaxDeliver = 3", got)
	}
	if got := dead.requests.Load(); got != 3 {
		t.Errorf("the webhook got %d requests, want one per attempt, 3", got)
	}
	if got := testutil.ToFloat64(h.p.Metrics().Deferred); got < 2 {
		t.Errorf("deferred %v times, want at least 2 (between the three attempts; more if a retry came back before the breaker let it try)", got)
	}
}

// While one delivery probes a failing integration, its other notifications
// wait deferred, not pending on the consumer: they waited MinBackoff
// (200 ms) at a time as NAK'd messages, pending for as long as the probe
// took (up to Attempts × AttemptTimeout), and once MaxAckPending of them
// did, no other receiver's notification was delivered meanwhile.
func TestWaitsOnAProbeAreDeferred(t *testing.T) {
	var hang atomic.Bool
	var hung atomic.Int32
	release := make(chan struct{})
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hang.Load() {
			w.WriteHeader(http.StatusInternalServerError) // the first failure opens the breaker
			return
		}
		hung.Add(1)
		select { // then the probe hangs
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(dead.Close)
	t.Cleanup(func() { close(release) })
	cfg := notify.Config{MaxAckPending: 8, Attempts: 1, AttemptTimeout: time.Minute, MaxDeliver: 1000}
	h, ok := twoReceiversAt(t, cfg, dead.URL)
	first := notification("dead-first")
	first.Receiver, first.GroupKey = "dead", `{}:{alertname="first"}`
	h.publish(t, first, first.IdempotencyKey)
	eventually(t, "the breaker open", func() bool {
		return testutil.ToFloat64(h.p.Metrics().Failed.WithLabelValues("webhook", "serverError")) >= 1
	})
	hang.Store(true)
	// The first notification's retry is the probe, and hangs (the others,
	// in other groups, are delivered by other workers).
	eventually(t, "the probe hanging", func() bool { return hung.Load() == 1 })
	for i := range 24 { // three times MaxAckPending
		n := notification(fmt.Sprintf("dead-%d", i))
		n.Receiver, n.GroupKey = "dead", fmt.Sprintf(`{}:{alertname="X%d"}`, i)
		h.publish(t, n, n.IdempotencyKey)
	}
	eventually(t, "the others waiting on the probe", func() bool {
		return testutil.ToFloat64(h.p.Metrics().BreakerWaits.WithLabelValues("webhook")) >= 24
	})
	h.publish(t, notification("ok"), "ok")
	eventually(t, "team-a's notification delivered while the probe hangs", func() bool { return ok.accepted.Load() == 1 })
}

// One receiver's rate limit slows only that receiver: a notification with
// no token for a second or more waits deferred, for the token reserved for
// it, not in a delivery worker. Waiting in the workers, a storm to one
// rate-limited receiver filled their queues, and no other receiver's
// notification was delivered until that backlog drained (40 notifications
// at 0.5/s: 80 s).
func TestRateLimitedReceiverDoesNotHoldUpOthers(t *testing.T) {
	busy := newTarget(t, 0, 0)
	cfg := notify.Config{RateLimit: 0.5, Burst: 1, MaxDeliver: 1000}
	h, ok := twoReceiversAt(t, cfg, busy.srv.URL)
	start := time.Now()
	for i := range 40 {
		n := notification(fmt.Sprintf("busy-%d", i))
		n.Receiver, n.GroupKey = "dead", fmt.Sprintf(`{}:{alertname="X%d"}`, i)
		h.publish(t, n, n.IdempotencyKey)
	}
	eventually(t, "the busy receiver's first notification sent", func() bool { return busy.accepted.Load() >= 1 })
	h.publish(t, notification("ok"), "ok")
	eventually(t, "team-a's notification delivered", func() bool { return ok.accepted.Load() == 1 })
	// The busy receiver's notifications go out in turn, at its rate.
	eventually(t, "the busy receiver's next notifications sent", func() bool { return busy.accepted.Load() >= 3 })
	if got, most := float64(busy.accepted.Load()), 2+time.Since(start).Seconds()*cfg.RateLimit; got > most {
		t.Errorf("the busy receiver got %v notifications in %v, more than its rate limit lets through (%v)", got, time.Since(start), most)
	}
}

// A receiver that fails for good has its notifications in the DLQ: the
// breaker's probe after MaxDeliver attempts, the others, waiting on it,
// once they have waited OrderWait since their creation. A wait on an open
// breaker is no attempt, and only the probe made one, so a dead endpoint's
// backlog reached the DLQ one notification per MaxDeliver attempts (weeks
// for a storm's), unseen (the DLQ depth stayed 0).
func TestNotificationsWaitingOnAFailingIntegrationReachTheDLQ(t *testing.T) {
	cfg := notify.Config{Attempts: 1, AttemptTimeout: time.Second, MinBackoff: time.Second, MaxBackoff: 2 * time.Second,
		MaxDeliver: 4, OrderWait: 3 * time.Second}
	h, _, _ := twoReceivers(t, cfg)
	for i := range 10 {
		n := notification(fmt.Sprintf("dead-%d", i))
		n.Receiver, n.GroupKey = "dead", fmt.Sprintf(`{}:{alertname="X%d"}`, i)
		h.publish(t, n, n.IdempotencyKey)
	}
	var dls []notify.DeadLetter
	eventually(t, "every notification in the DLQ", func() bool { dls = deadLetters(t, h.b); return len(dls) == 10 })
	// Each says what the endpoint answered, those that only waited too (they
	// said "integration failing", reason other).
	for _, dl := range dls {
		if dl.Reason != string(notify.ReasonServerError) || !strings.Contains(dl.Error, "500") {
			t.Errorf("dead letter %s: reason %s, error %q: want the endpoint's 500 said", dl.Notification.IdempotencyKey, dl.Reason, dl.Error)
		}
	}
}

// A receiver that cannot be built for now (JetStream unreachable when its
// Slack message refs are opened) is retried, not dead-lettered as a bad
// configuration at once.
func TestUnavailableBuilderIsRetried(t *testing.T) {
	ok := newTarget(t, 0, 0)
	var failing atomic.Bool
	var builds atomic.Int32
	failing.Store(true)
	tmpl := notifytest.Template(t)
	cfg := notify.Config{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxDeliver: 1000}
	h := runPipeline(t, cfg, func(_ *ruleset.Tenant, _ string, log *slog.Logger) ([]notify.Integration, error) {
		builds.Add(1)
		if failing.Load() {
			return nil, fmt.Errorf("%w: slack message refs bucket: nats: timeout", notify.ErrUnavailable)
		}
		return webhookAt(tmpl, ok.srv.URL, log)
	}, "team-a")
	h.publish(t, notification("n"), "n")
	eventually(t, "the build tried again", func() bool { return builds.Load() >= 3 })
	failing.Store(false)
	eventually(t, "the notification delivered once the receiver builds", func() bool { return ok.accepted.Load() == 1 })
	if dls := deadLetters(t, h.b); len(dls) != 0 {
		t.Fatalf("dead-lettered %d, want none", len(dls))
	}
}
