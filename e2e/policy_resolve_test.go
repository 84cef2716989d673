package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// TestShortWindowPolicyFiresAndResolves: restart alerts posted to
// /api/v2/alerts fire a short-window policy's derived alert at the webhook,
// and it arrives resolved once its window has passed — not before.
func TestShortWindowPolicyFiresAndResolves(t *testing.T) {
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL()) + `
policies:
  - name: flapping
    match: ['alertname="KubePodRestart"']
    key: [namespace, pod]
    threshold: 2
    window: 3s
    labels: {alertname: PodFlapping, severity: warning}
    annotations: {summary: 'Pod {{ $labels.pod }} restarted {{ $count }} times in {{ $window }}'}
`})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})

	// Three restarts of one pod 100 ms apart (three startsAt, so three
	// occurrences), each posted twice as Prometheus re-sends firing alerts.
	first := time.Now().UTC().Add(-300 * time.Millisecond)
	var alerts []string
	for i := 0; i < 3; i++ {
		alerts = append(alerts, fmt.Sprintf(`{"labels":{"alertname":"KubePodRestart","namespace":"shop","pod":"web-9"},"startsAt":%q}`,
			first.Add(time.Duration(i)*100*time.Millisecond).Format(time.RFC3339Nano)))
	}
	for j := 0; j < 2; j++ {
		if code, body := k.Post("/api/v2/alerts", "["+strings.Join(alerts, ",")+"]"); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	harness.Eventually(t, 15*time.Second, "PodFlapping firing at the webhook", func() bool {
		return sink.AlertsByLabel("alertname", "firing")["PodFlapping"] >= 1
	})
	harness.Eventually(t, 15*time.Second, "PodFlapping resolved at the webhook", func() bool {
		return sink.AlertsByLabel("alertname", "resolved")["PodFlapping"] >= 1
	})

	var firing, resolved bool
	for _, m := range sink.Messages() {
		for _, a := range m.Alerts {
			if a.Labels["alertname"] != "PodFlapping" {
				continue
			}
			if a.Labels["policy"] != "flapping" || a.Labels["pod"] != "web-9" || a.Labels["namespace"] != "shop" || a.Labels["severity"] != "warning" {
				t.Errorf("derived alert labels %v", a.Labels)
			}
			switch a.Status {
			case "firing":
				firing = true
				if a.Annotations["count"] != "3" || a.Annotations["threshold"] != "2" || a.Annotations["window"] != "3s" ||
					a.Annotations["summary"] != "Pod web-9 restarted 3 times in 3s" {
					t.Errorf("firing annotations %v (a re-sent alert must not count again)", a.Annotations)
				}
				if resolved {
					t.Errorf("fired again after it resolved")
				}
			case "resolved":
				resolved = true
				// The count falls back to the threshold when the first restart
				// leaves the 3s window.
				if leaves := first.Add(3 * time.Second); m.At.Before(leaves) || a.EndsAt.Before(leaves.Truncate(time.Second)) {
					t.Errorf("resolved at %v (endsAt %v), before the first restart left the window at %v", m.At, a.EndsAt, leaves)
				}
				if !a.StartsAt.IsZero() && a.EndsAt.Before(a.StartsAt) {
					t.Errorf("endsAt %v before startsAt %v", a.EndsAt, a.StartsAt)
				}
			}
		}
	}
	if !firing || !resolved {
		t.Fatalf("firing %v resolved %v", firing, resolved)
	}
	if _, body := getBody(t, k.URL()+"/api/v1/policies/flapping"); !strings.Contains(body, `"occurrences_total": 3`) {
		t.Errorf("GET /api/v1/policies/flapping: %s", body)
	}
}
