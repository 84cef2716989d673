package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// TestAmtoolAgainstKlaxon: Debian's amtool, unchanged, against a running
// klaxon process: a silence it adds mutes the engine's notifications, alert
// query shows the alerts, and expiring the silence lets them through.
func TestAmtoolAgainstKlaxon(t *testing.T) {
	bin := requireBinary(t, []string{"amtool"}, "prometheus-alertmanager")
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})
	home := t.TempDir() // no ~/.config/amtool/config.yml of the user's
	amtool := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--alertmanager.url=" + k.URL()}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("amtool %v: %v\n%s%s", args, err, out, stderr.String())
		}
		return string(out)
	}
	type amAlert struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State      string   `json:"state"`
			SilencedBy []string `json:"silencedBy"`
		} `json:"status"`
	}
	queryAlerts := func(args ...string) []amAlert {
		t.Helper()
		out := amtool(append([]string{"alert", "query", "-o", "json"}, args...)...)
		var as []amAlert
		if err := json.Unmarshal([]byte(out), &as); err != nil {
			t.Fatalf("alert query %v: %v\n%s", args, err, out)
		}
		return as
	}
	find := func(as []amAlert, alertname, instance string) *amAlert {
		for i := range as {
			if as[i].Labels["alertname"] == alertname && as[i].Labels["instance"] == instance {
				return &as[i]
			}
		}
		return nil
	}
	post := func(alertname, instance string) {
		t.Helper()
		body := fmt.Sprintf(`[{"labels":{"alertname":%q,"instance":%q}}]`, alertname, instance)
		if code, resp := k.Post("/api/v2/alerts", body); code != 200 {
			t.Fatalf("alert %s/%s: %d %s", alertname, instance, code, resp)
		}
	}
	notified := func(alertname, instance string) bool {
		for _, m := range sink.Messages() {
			for _, a := range m.Alerts {
				if a.Labels["alertname"] == alertname && a.Labels["instance"] == instance && a.Status == "firing" {
					return true
				}
			}
		}
		return false
	}

	out := amtool("silence", "add", "alertname=Noisy", "-d", "1h", "-c", "test")
	id := strings.TrimSpace(out)
	if len(id) != 36 || strings.Count(id, "-") != 4 {
		t.Fatalf("silence add printed %q, want a silence id", out)
	}
	if q := amtool("silence", "query"); !strings.Contains(q, id) || !strings.Contains(q, `alertname="Noisy"`) || !strings.Contains(q, "test") {
		t.Fatalf("silence query does not list %s:\n%s", id, q)
	}
	if q := strings.TrimSpace(amtool("silence", "query", "-q")); q != id {
		t.Fatalf("silence query -q = %q, want %q", q, id)
	}

	// Noisy first, and in a group before Other is posted, so the flush that
	// notifies Other has already evaluated Noisy's group (flushes run in
	// order of due time).
	post("Noisy", "a")
	harness.Eventually(t, 15*time.Second, "Noisy in alert query -s", func() bool {
		return find(queryAlerts("-s"), "Noisy", "a") != nil
	})
	post("Other", "a")
	harness.Eventually(t, 15*time.Second, "Other notified", func() bool { return notified("Other", "a") })
	if notified("Noisy", "a") {
		t.Fatalf("the silenced Noisy alert was notified: %+v", sink.Messages())
	}

	all := queryAlerts("-a", "-s")
	noisy, other := find(all, "Noisy", "a"), find(all, "Other", "a")
	if noisy == nil || other == nil {
		t.Fatalf("alert query -a -s must list Noisy and Other: %+v", all)
	}
	if noisy.Status.State != "suppressed" || len(noisy.Status.SilencedBy) != 1 || noisy.Status.SilencedBy[0] != id {
		t.Errorf("Noisy must be suppressed by %s: %+v", id, noisy.Status)
	}
	if other.Status.State != "active" || len(other.Status.SilencedBy) != 0 {
		t.Errorf("Other must be active: %+v", other.Status)
	}
	// Without -s, amtool hides silenced alerts, as against Alertmanager.
	if def := queryAlerts(); find(def, "Noisy", "a") != nil || find(def, "Other", "a") == nil {
		t.Errorf("alert query (default: no silenced) = %+v, want Other only", def)
	}

	amtool("silence", "expire", id)
	if q := strings.TrimSpace(amtool("silence", "query", "-q")); q != "" {
		t.Fatalf("active silences after expire: %q", q)
	}
	if q := strings.TrimSpace(amtool("silence", "query", "--expired", "-q")); q != id {
		t.Fatalf("silence query --expired -q = %q, want %q", q, id)
	}
	post("Noisy", "b")
	harness.Eventually(t, 15*time.Second, "Noisy instance=b notified after the silence expired", func() bool {
		return notified("Noisy", "b")
	})
	// As in Alertmanager, the still-firing Noisy instance=a is notified at its
	// group's next flush once nothing mutes it.
	harness.Eventually(t, 15*time.Second, "Noisy instance=a notified after the silence expired", func() bool {
		return notified("Noisy", "a")
	})
}
