package receivers

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/notify/notifytest"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// victorOps accepts the REST endpoint integration's body at
// /<api key>/<routing key>, as VictorOps does.
type victorOps struct {
	mu     sync.Mutex
	bodies []map[string]any
	paths  []string
}

func (v *victorOps) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body["message_type"] == nil || body["entity_id"] == nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	v.mu.Lock()
	v.bodies = append(v.bodies, body)
	v.paths = append(v.paths, r.URL.Path)
	v.mu.Unlock()
	_, _ = w.Write([]byte(`{"result":"success","entity_id":"x"}`))
}

func loadTenant(t *testing.T, yml string) *ruleset.Tenant {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	tn, errs := ruleset.LoadTenant("default", dir)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return tn
}

func TestBuildAllIntegrationsAndDeliverVictorOps(t *testing.T) {
	vo := &victorOps{}
	srv := httptest.NewServer(vo)
	defer srv.Close()
	tn := loadTenant(t, `
route: {receiver: all}
receivers:
  - name: all
    webhook_configs: [{url: "http://127.0.0.1:1/hook"}]
    slack_configs: [{api_url: "http://127.0.0.1:1/services/T/B/x", channel: "#alerts"}]
    pagerduty_configs: [{routing_key: "R0123456789abcdef0123456789abcde"}]
    email_configs: [{to: "oncall@example.org", from: "k@example.org", smarthost: "127.0.0.1:25"}]
    victorops_configs: [{api_key: "KEY", routing_key: "team-a", api_url: "`+srv.URL+`/integrations/alert/"}]
    opsgenie_configs: [{api_key: "x", api_url: "http://127.0.0.1:1/"}]
    msteams_configs: [{webhook_url: "http://127.0.0.1:1/teams"}]
    telegram_configs: [{bot_token: "t", chat_id: 1, api_url: "http://127.0.0.1:1"}]
`)
	ext, _ := url.Parse("http://klaxon.example:9095")
	b := NewBuilder(ext)
	ints, err := b.Build(tn, "all", bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range ints {
		names = append(names, in.Name)
	}
	if got := strings.Join(names, ","); got != "webhook,pagerduty,email,slack,victorops,opsgenie,msteams,telegram" {
		t.Fatalf("integrations %s", got)
	}
	vi := ints[4]
	for _, resolved := range []bool{false, true} {
		no := notifytest.Notification(resolved)
		if retry, err := vi.Notifier.Notify(no.Context(context.Background()), no); err != nil {
			t.Fatalf("victorops resolved=%v: retry=%v err=%v", resolved, retry, err)
		}
	}
	if len(vo.bodies) != 2 || vo.paths[0] != "/integrations/alert/KEY/team-a" {
		t.Fatalf("victorops got %d bodies at %v", len(vo.bodies), vo.paths)
	}
	if vo.bodies[0]["message_type"] != "CRITICAL" || vo.bodies[1]["message_type"] != "RECOVERY" || vo.bodies[0]["entity_id"] != vo.bodies[1]["entity_id"] {
		t.Fatalf("victorops bodies: %v", vo.bodies)
	}
}

func TestUnsupportedNamesTheAlternative(t *testing.T) {
	tn := loadTenant(t, `
route: {receiver: pd}
receivers:
  - name: pd
    pagerduty_configs: [{service_key: "abc"}]
`)
	msgs := Unsupported(tn.Receiver("pd"))
	if len(msgs) != 1 || !strings.Contains(msgs[0], "routing_key") || !strings.Contains(msgs[0], "webhook_configs") {
		t.Fatalf("Unsupported: %v", msgs)
	}
	ext, _ := url.Parse("http://klaxon.example:9095")
	if _, err := NewBuilder(ext).Build(tn, "pd", bustest.Logger(t)); err == nil {
		t.Fatal("built an integration Klaxon cannot deliver")
	}
}
