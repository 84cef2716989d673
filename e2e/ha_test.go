package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/klaxon-sh/klaxon/e2e/harness"
	"github.com/klaxon-sh/klaxon/e2e/peers"
	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
)

// TestHAKill runs two replicas of every target against a real 3-node NATS
// cluster (R3 streams and KV), drives a steady alert load, and during it
// SIGKILLs one NATS node and one replica of each target, then restarts them.
// Every acknowledged alert must be notified, firing and resolved, and no
// notification may be delivered twice (the sink counts by the
// Idempotency-Key header, as PagerDuty counts by dedup_key).
func TestHAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("long HA test")
	}
	sink := harness.NewSink(t)
	cluster := harness.StartNATSCluster(t, 3)
	pd := peers.NewPagerDuty(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL()) + fmt.Sprintf(`
    pagerduty_configs:
      - routing_key: R0123456789abcdef0123456789abcde
        url: %s
`, pd.URL())})
	start := func(target string) *harness.Klaxon {
		return harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Target: target, NATSURL: cluster.URL(),
			// A notification-log record lost to the node kill (the send
			// retries it, but may run out) would hold the group's resolve
			// for the default 10m order wait; 15s keeps that within the test.
			Extra: []string{"--notify.min-backoff", "50ms", "--notify.max-backoff", "2s", "--notify.max-deliver", "50",
				"--notify.order-wait", "15s"}})
	}
	var receivers []*harness.Klaxon
	for i := 0; i < 2; i++ {
		receivers = append(receivers, start("receiver"))
	}
	engines := []*harness.Klaxon{start("engine"), start("engine")}
	notifiers := []*harness.Klaxon{start("notifier"), start("notifier")}

	// The load: each alert fires, and is resolved once its firing
	// notification has arrived. (An alert that fires and resolves before
	// its group's first flush is, as in Alertmanager, never notified at all:
	// the test resolves only notified alerts, so that every acknowledged
	// alert owes exactly one firing and one resolved notification.) A POST
	// that fails (its receiver is being killed) is retried on the other
	// replica, as Alertmanager retries and a Service load-balances.
	const total = 120
	var acked sync.Map // id → true once both firing and resolved were acknowledged
	var posted atomic.Int32
	post := func(body string) bool {
		for attempt := 0; attempt < 40; attempt++ {
			r := receivers[rand.IntN(len(receivers))]
			if code, _ := r.Post("/api/v2/alerts", body); code == 200 {
				return true
			}
			time.Sleep(50 * time.Millisecond)
		}
		return false
	}
	startsAt := map[int]string{}
	var mu sync.Mutex
	toResolve := map[int]bool{} // firing acknowledged, resolve not yet posted
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < total; i++ {
			at := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano)
			if post(fmt.Sprintf(`[{"labels":{"alertname":"HA","id":"%d"},"startsAt":%q}]`, i, at)) {
				mu.Lock()
				startsAt[i], toResolve[i] = at, true
				mu.Unlock()
			}
			posted.Add(1)
			time.Sleep(40 * time.Millisecond)
		}
	}()
	resolverDone := make(chan struct{})
	stopResolver := make(chan struct{})
	go func() {
		defer close(resolverDone)
		for {
			firing, _ := countByID(sink.Unique())
			mu.Lock()
			var due []int
			for i := range toResolve {
				if firing[fmt.Sprint(i)] > 0 {
					due = append(due, i)
				}
			}
			mu.Unlock()
			for _, i := range due {
				mu.Lock()
				at := startsAt[i]
				mu.Unlock()
				body := fmt.Sprintf(`[{"labels":{"alertname":"HA","id":"%d"},"startsAt":%q,"endsAt":%q}]`, i, at, time.Now().UTC().Format(time.RFC3339Nano))
				if post(body) {
					acked.Store(fmt.Sprint(i), true)
					mu.Lock()
					delete(toResolve, i)
					mu.Unlock()
				}
			}
			select {
			case <-stopResolver:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	// Chaos, while the load runs.
	harness.Eventually(t, 30*time.Second, "load under way", func() bool { return posted.Load() >= 20 })
	cluster.Nodes[0].Kill()
	receivers[0].Kill()
	engines[0].Kill()
	notifiers[0].Kill()
	harness.Eventually(t, 30*time.Second, "load continues with one of each down", func() bool { return posted.Load() >= 60 })
	cluster.Nodes[0].Start()
	receivers[0].Start()
	engines[0].Start()
	notifiers[0].Start()
	<-done
	// Every acknowledged firing alert must be notified (and so resolved).
	harness.EventuallyWhy(t, 90*time.Second, "a firing notification for every acknowledged firing alert", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(toResolve) == 0
	}, func() string {
		missing := map[string]string{}
		mu.Lock()
		for i := range toResolve {
			missing[fmt.Sprint(i)] = "no firing notification"
		}
		mu.Unlock()
		return ingestHistory(cluster.URL(), missing)
	})
	close(stopResolver)
	<-resolverDone

	ids := 0
	acked.Range(func(_, _ any) bool { ids++; return true })
	if ids < total*9/10 {
		t.Fatalf("only %d of %d alerts were acknowledged: the system was unavailable too long", ids, total)
	}
	missing := func() map[string]string {
		firing, resolved := countByID(sink.Unique())
		m := map[string]string{}
		acked.Range(func(k, _ any) bool {
			if id := k.(string); firing[id] == 0 || resolved[id] == 0 {
				m[id] = fmt.Sprintf("firing %d, resolved %d", firing[id], resolved[id])
			}
			return true
		})
		return m
	}
	harness.EventuallyWhy(t, 90*time.Second, fmt.Sprintf("firing and resolved notifications for all %d acknowledged alerts", ids),
		func() bool { return len(missing()) == 0 },
		func() string { return ingestHistory(cluster.URL(), missing()) })
	firing, resolved := countByID(sink.Unique())
	for id, n := range firing {
		if n > 1 {
			t.Errorf("alert %s: %d firing notifications with distinct keys", id, n)
		}
	}
	for id, n := range resolved {
		if n > 1 {
			t.Errorf("alert %s: %d resolved notifications with distinct keys", id, n)
		}
	}
	// PagerDuty: one incident per alert, triggered and resolved — repeated
	// events with the same dedup_key and action are what PagerDuty itself
	// deduplicates, so they are counted but do not fail the test.
	harness.Eventually(t, 30*time.Second, "a PagerDuty resolve for every acknowledged alert", func() bool {
		resolves := 0
		for _, acts := range pd.Actions() {
			if slices.Contains(acts, "resolve") {
				resolves++
			}
		}
		return resolves >= ids
	})
	incidents := pd.Actions()
	if len(incidents) != ids {
		t.Errorf("%d PagerDuty dedup keys for %d alerts", len(incidents), ids)
	}
	for key, acts := range incidents {
		if got := slices.Compact(slices.Clone(acts)); !slices.Equal(got, []string{"trigger", "resolve"}) {
			t.Errorf("PagerDuty dedup_key %s: events %v, want trigger then resolve", key, acts)
		}
	}
	if n := pd.Rejected(); n != 0 {
		t.Errorf("PagerDuty rejected %d events", n)
	}
	raw, unique := len(sink.Messages()), len(sink.Unique())
	t.Logf("PagerDuty: %d events for %d incidents", len(pd.Events()), len(incidents))
	t.Logf("acknowledged %d alerts; %d notifications received, %d after dropping repeated Idempotency-Keys", ids, raw, unique)
	if os.Getenv("KLAXON_HA_REPORT") != "" {
		fmt.Printf("HA kill test: %d alerts acknowledged, %d notifications, %d unique, 0 lost\n", ids, raw, unique)
	}
}

func countByID(msgs []harness.WebhookMessage) (firing, resolved map[string]int) {
	firing, resolved = map[string]int{}, map[string]int{}
	for _, m := range msgs {
		for _, a := range m.Alerts {
			if a.Status == "firing" {
				firing[a.Labels["id"]]++
			} else {
				resolved[a.Labels["id"]]++
			}
		}
	}
	return firing, resolved
}

// ingestHistory says, for each alert id missing a notification, what the
// INGEST stream holds for it: whether an acknowledged alert is in the
// stream (the engine lost it) or not (the receiver or the cluster did).
func ingestHistory(url string, missing map[string]string) string {
	var b strings.Builder
	history := map[string][]string{}
	err := func() error {
		nc, err := nats.Connect(url)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := js.OrderedConsumer(ctx, "INGEST", jetstream.OrderedConsumerConfig{})
		if err != nil {
			return err
		}
		for {
			msg, err := c.Next(jetstream.FetchMaxWait(time.Second))
			if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
				return nil
			}
			if err != nil {
				return err
			}
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			// As bus.DecodeEnvelopes decodes (header bus.BatchHeader); the e2e
			// module does not depend on services, so it is spelled out here.
			var envs []*klaxonv1.Envelope
			if msg.Headers().Get("Klaxon-Batch") != "" {
				var batch klaxonv1.EnvelopeBatch
				if err := proto.Unmarshal(msg.Data(), &batch); err != nil {
					return err
				}
				envs = batch.Envelopes
			} else {
				env := new(klaxonv1.Envelope)
				if err := proto.Unmarshal(msg.Data(), env); err != nil {
					return err
				}
				envs = append(envs, env)
			}
			for _, env := range envs {
				id := env.GetAlert().GetLabels()["id"]
				if _, ok := missing[id]; ok {
					history[id] = append(history[id], fmt.Sprintf("seq %d %s (msg id %s, received %s)",
						md.Sequence.Stream, env.GetAlert().GetStatus(), msg.Headers().Get(nats.MsgIdHdr), env.GetReceivedAt().AsTime().Format(time.StampMilli)))
				}
			}
			if md.NumPending == 0 {
				return nil
			}
		}
	}()
	for _, id := range slices.Sorted(maps.Keys(missing)) {
		fmt.Fprintf(&b, "\n  id %s: %s; in INGEST: %v", id, missing[id], history[id])
	}
	if err != nil {
		fmt.Fprintf(&b, "\n  (reading INGEST: %v)", err)
	}
	return b.String()
}
