package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
	"github.com/klaxon-sh/klaxon/e2e/peers"
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
	harness.Eventually(t, 90*time.Second, "a firing notification for every acknowledged firing alert", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(toResolve) == 0
	})
	close(stopResolver)
	<-resolverDone

	ids := 0
	acked.Range(func(_, _ any) bool { ids++; return true })
	if ids < total*9/10 {
		t.Fatalf("only %d of %d alerts were acknowledged: the system was unavailable too long", ids, total)
	}
	harness.Eventually(t, 90*time.Second, fmt.Sprintf("firing and resolved notifications for all %d acknowledged alerts", ids), func() bool {
		firing, resolved := countByID(sink.Unique())
		missing := 0
		acked.Range(func(k, _ any) bool {
			if firing[k.(string)] == 0 || resolved[k.(string)] == 0 {
				missing++
			}
			return true
		})
		return missing == 0
	})
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
