package e2e

import (
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

func TestNATSClusterSmoke(t *testing.T) {
	sink := harness.NewSink(t)
	cl := harness.StartNATSCluster(t, 3)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, NATSURL: cl.URL()})
	if code, body := k.Post("/api/v2/alerts", `[{"labels":{"alertname":"Cluster"}}]`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	harness.Eventually(t, 20*time.Second, "delivered via R3 cluster", func() bool {
		return sink.AlertsByLabel("alertname", "firing")["Cluster"] == 1
	})
}
