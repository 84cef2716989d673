package notify_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	amconfig "github.com/prometheus/alertmanager/config"
	amcommoncfg "github.com/prometheus/alertmanager/config/common"
	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/notify"
	"github.com/klaxon-sh/klaxon/services/notify/notifytest"
	"github.com/klaxon-sh/klaxon/services/notify/webhook"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// A webhook that times out (a firewall dropping packets) holds up one
// delivery at a time, not every worker: after its first failures one
// delivery probes it while its other notifications wait, without an
// attempt, and another receiver's notification goes out. Before, each of
// its notifications held a worker for Attempts × AttemptTimeout, its groups
// were spread over all 16 workers, and every tenant's notifications waited.
func TestHangingWebhookHoldsUpOnlyItsOwnNotifications(t *testing.T) {
	var hung atomic.Int32
	release := make(chan struct{})
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(dead.Close)
	t.Cleanup(func() { close(release) })
	ok := newTarget(t, 0, 0)

	b := bustest.New(t)
	tenant := &ruleset.Tenant{Name: "default", Config: &amconfig.Config{Receivers: []amconfig.Receiver{{Name: "dead"}, {Name: "team-a"}}}}
	holder := ruleset.NewStaticHolder(&ruleset.Set{Tenants: map[string]*ruleset.Tenant{"default": tenant}})
	tmpl := notifytest.Template(t)
	build := func(_ *ruleset.Tenant, receiver string, log *slog.Logger) ([]notify.Integration, error) {
		url := ok.srv.URL
		if receiver == "dead" {
			url = dead.URL
		}
		n, err := webhook.New(&amwebhook.WebhookConfig{URL: amcommoncfg.SecretTemplateURL(url)}, tmpl, log)
		if err != nil {
			return nil, err
		}
		return []notify.Integration{{Name: "webhook", SendResolved: true, Notifier: n}}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg := notify.Config{AttemptTimeout: 300 * time.Millisecond, Attempts: 3, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxDeliver: 1000}
	p, err := notify.NewPipeline(ctx, cfg, b, holder, build, bustest.Logger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	h := &harness{b: b, p: p}
	for i := range 32 { // more than the 16 workers
		n := notification(fmt.Sprintf("dead-%d", i))
		n.Receiver, n.GroupKey = "dead", fmt.Sprintf(`{}:{alertname="X%d"}`, i)
		h.publish(t, n, n.IdempotencyKey)
	}
	h.publish(t, notification("ok"), "ok")
	eventually(t, "team-a's notification delivered", func() bool { return ok.accepted.Load() == 1 })
	// Without the breaker every worker made Attempts tries of its first
	// dead notification before the next: 16 × 3 requests at least by now.
	if n := hung.Load(); n > 24 {
		t.Fatalf("the hanging webhook got %d requests before team-a's notification went out, want at most one per worker and a probe's retries", n)
	}
}
