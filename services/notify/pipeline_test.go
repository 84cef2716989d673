package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	amconfig "github.com/prometheus/alertmanager/config"
	amcommoncfg "github.com/prometheus/alertmanager/config/common"
	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/notify"
	"github.com/klaxon-sh/klaxon/services/notify/notifytest"
	"github.com/klaxon-sh/klaxon/services/notify/webhook"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// target is a webhook endpoint that fails its first `fail` requests with
// `status`, then accepts; it counts accepted Alertmanager v4 bodies.
type target struct {
	srv      *httptest.Server
	mu       sync.Mutex
	fail     int
	status   int
	accepted atomic.Int32
	requests atomic.Int32
}

func newTarget(t *testing.T, fail, status int) *target {
	tg := &target{fail: fail, status: status}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.requests.Add(1)
		var msg amwebhook.Message
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil || msg.Version != "4" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		tg.mu.Lock()
		failing := tg.fail != 0
		if tg.fail > 0 {
			tg.fail--
		}
		tg.mu.Unlock()
		if failing {
			w.WriteHeader(tg.status)
			return
		}
		tg.accepted.Add(1)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *target) setFail(n int) { tg.mu.Lock(); tg.fail = n; tg.mu.Unlock() }

type harness struct {
	b   *bus.Bus
	p   *notify.Pipeline
	reg *prometheus.Registry
}

// start runs a pipeline whose receiver "team-a" has one webhook integration
// per target.
func start(t *testing.T, cfg notify.Config, targets ...*target) *harness {
	t.Helper()
	b := bustest.New(t)
	tenant := &ruleset.Tenant{Name: "default", Config: &amconfig.Config{Receivers: []amconfig.Receiver{{Name: "team-a"}}}}
	holder := ruleset.NewStaticHolder(&ruleset.Set{Tenants: map[string]*ruleset.Tenant{"default": tenant}})
	tmpl := notifytest.Template(t)
	build := func(_ *ruleset.Tenant, _ string, log *slog.Logger) ([]notify.Integration, error) {
		var ints []notify.Integration
		for i, tg := range targets {
			c := &amwebhook.WebhookConfig{URL: amcommoncfg.SecretTemplateURL(tg.srv.URL)}
			n, err := webhook.New(c, tmpl, log)
			if err != nil {
				return nil, err
			}
			ints = append(ints, notify.Integration{Name: "webhook", Index: i, SendResolved: true, Notifier: n})
		}
		return ints, nil
	}
	reg := prometheus.NewRegistry()
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := notify.NewPipeline(ctx, cfg, b, holder, build, bustest.Logger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &harness{b: b, p: p, reg: reg}
}

func notification(key string) *klaxonv1.Notification {
	return &klaxonv1.Notification{
		Tenant: "default", Receiver: "team-a", GroupKey: "{}:{alertname=\"X\"}",
		GroupLabels: map[string]string{"alertname": "X"},
		Alerts: []*klaxonv1.Alert{{
			Labels:      map[string]string{"alertname": "X", "severity": "critical"},
			StartsAt:    timestamppb.New(time.Now().Add(-time.Minute)),
			Status:      klaxonv1.AlertStatus_ALERT_STATUS_FIRING,
			Fingerprint: "abc",
		}},
		CreatedAt:      timestamppb.Now(),
		IdempotencyKey: key,
	}
}

func (h *harness) publish(t *testing.T, n *klaxonv1.Notification, msgID string) {
	t.Helper()
	data, err := proto.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	// Sharded as the engine publishes them: one group's notifications in
	// order, other groups' on other workers.
	if _, err := h.b.Publish(context.Background(), bus.Message{Subject: bus.NotifySubject(n.Tenant, n.Receiver), ID: msgID, Data: data, Shard: bus.NotificationShard(n)}); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or 15 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func deadLetters(t *testing.T, b *bus.Bus) []notify.DeadLetter {
	t.Helper()
	dls, err := notify.ListDeadLetters(context.Background(), b, notify.DeadLetterFilter{Tenant: "default"})
	if err != nil {
		t.Fatal(err)
	}
	return dls
}

func TestSameNotificationTwiceSendsOnce(t *testing.T) {
	tg := newTarget(t, 0, 0)
	h := start(t, notify.Config{}, tg)
	// Two different msg ids get past JetStream's dedup: the notification log
	// must stop the second send.
	h.publish(t, notification("k-dup"), "m1")
	eventually(t, "first send", func() bool { return tg.accepted.Load() == 1 })
	h.publish(t, notification("k-dup"), "m2")
	eventually(t, "duplicate suppressed", func() bool {
		return testutil.ToFloat64(h.p.Metrics().Suppressed.WithLabelValues("webhook", "duplicate")) == 1
	})
	if n := tg.requests.Load(); n != 1 {
		t.Fatalf("target got %d requests, want 1", n)
	}
}

func TestPartialSuccessDoesNotResendToTheOK(t *testing.T) {
	ok := newTarget(t, 0, 0)
	flaky := newTarget(t, 4, http.StatusServiceUnavailable) // fails more than one delivery's attempts
	h := start(t, notify.Config{Attempts: 2, MaxDeliver: 10}, ok, flaky)
	h.publish(t, notification("k-partial"), "m1")
	eventually(t, "flaky target to accept", func() bool { return flaky.accepted.Load() == 1 })
	if n := ok.requests.Load(); n != 1 {
		t.Fatalf("healthy target got %d requests, want exactly 1", n)
	}
	if n := flaky.requests.Load(); n != 5 {
		t.Fatalf("flaky target got %d requests, want 4 failures + 1 success", n)
	}
	if dls := deadLetters(t, h.b); len(dls) != 0 {
		t.Fatalf("dead letters: %v", dls)
	}
}

// An integration that fails for good (400) while its sibling fails for now
// (503) goes to the DLQ at once, on its own, and is posted once; the sibling
// is retried until it accepts. Before, the notification was retried for the
// sibling's sake and the 400 posted again at every retry, to reach the DLQ
// only when the sibling succeeded or after MaxDeliver. Replaying its dead
// letter sends to it alone.
func TestPermanentFailureIsDeadLetteredAloneWhileItsSiblingIsRetried(t *testing.T) {
	bad := newTarget(t, -1, http.StatusBadRequest)
	flaky := newTarget(t, -1, http.StatusServiceUnavailable) // until told otherwise
	h := start(t, notify.Config{Attempts: 1, MaxDeliver: 1000}, bad, flaky)
	h.publish(t, notification("k-mixed"), "m1")
	var dls []notify.DeadLetter
	eventually(t, "the 400 dead-lettered while its sibling fails", func() bool { dls = deadLetters(t, h.b); return len(dls) == 1 })
	dl := dls[0]
	if dl.Reason != string(notify.ReasonClientError) || !strings.HasPrefix(dl.Error, "webhook[0]: ") || !strings.Contains(dl.Error, "400") ||
		dl.Attempts != 1 || dl.Notification.IdempotencyKey != "k-mixed" {
		t.Fatalf("dead letter: reason=%s attempts=%d key=%s err=%q, want the 400 of webhook[0] at the first attempt", dl.Reason, dl.Attempts, dl.Notification.IdempotencyKey, dl.Error)
	}
	if got := testutil.ToFloat64(h.p.Metrics().DeadLetters.WithLabelValues("team-a", string(notify.ReasonClientError))); got != 1 {
		t.Fatalf("dead letters counted: %v, want 1", got)
	}
	tried := flaky.requests.Load()
	eventually(t, "the sibling retried", func() bool { return flaky.requests.Load() >= tried+3 })
	flaky.setFail(0)
	eventually(t, "the sibling to accept", func() bool { return flaky.accepted.Load() == 1 })
	if n := bad.requests.Load(); n != 1 {
		t.Fatalf("the failing-for-good target got %d requests, want 1 (not one per retry of its sibling)", n)
	}
	if dls := deadLetters(t, h.b); len(dls) != 1 || dls[0].Seq != dl.Seq {
		t.Fatalf("%d dead letters once the sibling sent, want the 400's alone", len(dls))
	}

	bad.setFail(0)
	if _, err := notify.Replay(context.Background(), h.b, "default", dl.Seq); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replay sent where it failed", func() bool { return bad.accepted.Load() == 1 })
	if n := flaky.accepted.Load(); n != 1 {
		t.Fatalf("the sibling got the notification %d times, want once", n)
	}
	if dls := deadLetters(t, h.b); len(dls) != 0 {
		t.Fatalf("dead letter still listed after replay: %d", len(dls))
	}
}

func TestDeadLetterAfterMaxDeliverThenReplay(t *testing.T) {
	tg := newTarget(t, -1, http.StatusBadGateway) // fails until told otherwise
	h := start(t, notify.Config{Attempts: 1, MaxDeliver: 3}, tg)
	h.publish(t, notification("k-dlq"), "m1")
	var dls []notify.DeadLetter
	eventually(t, "dead letter", func() bool { dls = deadLetters(t, h.b); return len(dls) == 1 })
	dl := dls[0]
	if dl.Reason != string(notify.ReasonServerError) || dl.Attempts != 3 || dl.Notification.IdempotencyKey != "k-dlq" {
		t.Fatalf("dead letter: reason=%s attempts=%d err=%s", dl.Reason, dl.Attempts, dl.Error)
	}
	if n := tg.requests.Load(); n != 3 {
		t.Fatalf("%d requests before the DLQ, want MaxDeliver=3", n)
	}
	// The gauge is set just after the dead letter is stored.
	eventually(t, "dlq depth gauge 1", func() bool { return testutil.ToFloat64(h.p.Metrics().DLQDepth) == 1 })
	if _, err := notify.Replay(context.Background(), h.b, "other-tenant", dl.Seq); err == nil {
		t.Fatal("another tenant replayed our dead letter")
	}

	tg.setFail(0)
	if _, err := notify.Replay(context.Background(), h.b, "default", dl.Seq); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replayed delivery", func() bool { return tg.accepted.Load() == 1 })
	if dls := deadLetters(t, h.b); len(dls) != 0 {
		t.Fatalf("dead letter still listed after replay: %d", len(dls))
	}
	if _, err := notify.Replay(context.Background(), h.b, "default", dl.Seq); err == nil {
		t.Fatal("replayed twice")
	}
}

func TestReplayedLetterThatDiesAgainIsParkedAgain(t *testing.T) {
	tg := newTarget(t, -1, http.StatusInternalServerError)
	h := start(t, notify.Config{Attempts: 1, MaxDeliver: 1}, tg)
	h.publish(t, notification("k-again"), "m1")
	var dls []notify.DeadLetter
	eventually(t, "dead letter", func() bool { dls = deadLetters(t, h.b); return len(dls) == 1 })
	if _, err := notify.Replay(context.Background(), h.b, "default", dls[0].Seq); err != nil {
		t.Fatal(err)
	}
	eventually(t, "second dead letter", func() bool {
		d := deadLetters(t, h.b)
		return len(d) == 1 && d[0].Seq != dls[0].Seq
	})
}

func TestClientErrorGoesStraightToDLQ(t *testing.T) {
	tg := newTarget(t, -1, http.StatusUnauthorized)
	h := start(t, notify.Config{Attempts: 3, MaxDeliver: 5}, tg)
	h.publish(t, notification("k-401"), "m1")
	var dls []notify.DeadLetter
	eventually(t, "dead letter", func() bool { dls = deadLetters(t, h.b); return len(dls) == 1 })
	if n := tg.requests.Load(); n != 1 || dls[0].Reason != string(notify.ReasonClientError) {
		t.Fatalf("401 was retried (%d requests) or mislabelled (%s)", n, dls[0].Reason)
	}
}

func TestStatusRetryMatrix(t *testing.T) {
	for _, tc := range []struct {
		status int
		retry  bool
	}{{400, false}, {401, false}, {404, false}, {408, true}, {413, false}, {429, true}, {500, true}, {502, true}, {503, true}, {504, true}} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("Retry-After", "7")
			rec.WriteHeader(tc.status)
			retry, err := notify.CheckResponse(rec.Result())
			if retry != tc.retry || err == nil {
				t.Fatalf("retry=%v err=%v", retry, err)
			}
			if tc.retry && notify.RetryAfterOf(err) != 7*time.Second {
				t.Fatalf("Retry-After lost: %v", notify.RetryAfterOf(err))
			}
		})
	}
}

// A notification that just fits NOTIFY does not fit the DLQ with its error
// beside it: it is parked with half its alerts (the error says how many
// were kept), not retried for ever.
func TestDeadLetterTooLargeIsParkedWithPartOfItsAlerts(t *testing.T) {
	tg := newTarget(t, -1, http.StatusUnauthorized)
	h := start(t, notify.Config{Attempts: 1, MaxDeliver: 1}, tg)
	n := notification("k-big")
	pad := strings.Repeat("p", 4000)
	for i := range 2100 { // past the embedded server's 8 MiB
		n.Alerts = append(n.Alerts, &klaxonv1.Alert{Labels: map[string]string{"alertname": "X", "i": fmt.Sprint(i)},
			Annotations: map[string]string{"pad": pad}, StartsAt: n.Alerts[0].StartsAt, Status: n.Alerts[0].Status, Fingerprint: fmt.Sprint(i)})
	}
	// The largest notification a message takes, to 16 bytes, then
	// published to NOTIFY.
	tooLarge := func() bool {
		data, err := proto.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		// A core publish with the header JetStream's will carry: checked
		// for size, then sent to no one, without waiting for an ack.
		m := &nats.Msg{Subject: "probe.size", Header: nats.Header{"Nats-Msg-Id": []string{"big"}, bus.ShardHeader: []string{bus.NotificationShard(n)}}, Data: data}
		return errors.Is(h.b.NC.PublishMsg(m), bus.ErrTooLarge)
	}
	for tooLarge() {
		n.Alerts = n.Alerts[:len(n.Alerts)-1]
	}
	last := n.Alerts[len(n.Alerts)-1]
	for _, step := range []int{1024, 16} {
		for !tooLarge() {
			last.Annotations["pad"] += strings.Repeat("p", step)
		}
		last.Annotations["pad"] = last.Annotations["pad"][step:]
	}
	h.publish(t, n, "big")
	var dls []notify.DeadLetter
	eventually(t, "dead letter", func() bool { dls = deadLetters(t, h.b); return len(dls) == 1 })
	if got, want := len(dls[0].Notification.Alerts), len(n.Alerts)/2; got != want || !strings.Contains(dls[0].Error, fmt.Sprintf("keeps %d of the notification's %d alerts", want, len(n.Alerts))) {
		t.Fatalf("dead letter with %d alerts and error %q, want %d kept and said so", got, dls[0].Error, want)
	}
}
