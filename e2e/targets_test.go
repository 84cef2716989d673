package e2e

import (
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// TestTargetsAsSeparateProcesses runs the receiver in one process (hosting
// the embedded NATS on loopback) and the engine and notifier in another that
// dials it, as microservices would against a NATS cluster.
func TestTargetsAsSeparateProcesses(t *testing.T) {
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	front := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Target: "receiver", NATSListen: true})
	harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Target: "engine,notifier",
		NATSURL: "nats://" + front.NATS, Extra: []string{"--nats.replicas", "1"}})

	if code, body := front.Post("/api/v2/alerts", `[{"labels":{"alertname":"Split"}}]`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	harness.Eventually(t, 15*time.Second, "alert delivered by the other process", func() bool {
		return sink.AlertsByLabel("alertname", "firing")["Split"] == 1
	})
}
