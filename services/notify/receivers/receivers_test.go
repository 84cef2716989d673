package receivers

import (
	"context"
	"encoding/json"
	"io"
	"net"
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

// pagerDutyV1 accepts the Events API v1 (generic/2010-04-15/create_event.json)
// as PagerDuty does: a service_key, an event_type, an incident_key, and a
// description for triggers; 400 otherwise.
type pagerDutyV1 struct {
	mu     sync.Mutex
	events []map[string]any
}

func (p *pagerDutyV1) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev map[string]any
	err := json.NewDecoder(r.Body).Decode(&ev)
	typ, _ := ev["event_type"].(string)
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/generic/2010-04-15/create_event.json",
		err != nil, ev["service_key"] == nil, ev["incident_key"] == nil,
		typ != "trigger" && typ != "resolve" && typ != "acknowledge",
		typ == "trigger" && ev["description"] == nil:
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"status":"invalid event","message":"Event object is invalid"}`))
		return
	}
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
	_, _ = w.Write([]byte(`{"status":"success","message":"Event processed","incident_key":"` + ev["incident_key"].(string) + `"}`))
}

// connectProxy is an HTTP proxy that tunnels every CONNECT to target,
// whatever host was asked for, and records the hosts.
type connectProxy struct {
	target string
	mu     sync.Mutex
	hosts  []string
}

func (c *connectProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	c.mu.Lock()
	c.hosts = append(c.hosts, r.Host)
	c.mu.Unlock()
	up, err := net.Dial("tcp", c.target)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		up.Close()
		return
	}
	_, _ = conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	go func() { _, _ = io.Copy(up, conn); up.Close() }()
	go func() { _, _ = io.Copy(conn, up); conn.Close() }()
}

// A pagerduty_config with the v1 service_key (as in Alertmanager's own
// example configuration) is delivered through Alertmanager's notifier: a
// trigger and a resolve with one incident_key, to PagerDuty's v1 endpoint
// (reached here through an HTTP proxy, since that URL is fixed).
func TestPagerDutyServiceKeyUsesEventsAPIv1(t *testing.T) {
	pd := &pagerDutyV1{}
	upstream := httptest.NewTLSServer(pd)
	defer upstream.Close()
	proxy := &connectProxy{target: upstream.Listener.Addr().String()}
	psrv := httptest.NewServer(proxy)
	defer psrv.Close()
	tn := loadTenant(t, `
route: {receiver: pd}
receivers:
  - name: pd
    pagerduty_configs:
      - service_key: "abc"
        send_resolved: true
        http_config: {proxy_url: "`+psrv.URL+`", tls_config: {insecure_skip_verify: true}}
`)
	if msgs := Unsupported(tn.Receiver("pd")); len(msgs) != 0 {
		t.Fatalf("Unsupported: %v", msgs)
	}
	ext, _ := url.Parse("http://klaxon.example:9095")
	ints, err := NewBuilder(ext).Build(tn, "pd", bustest.Logger(t))
	if err != nil || len(ints) != 1 || ints[0].Name != "pagerduty" {
		t.Fatalf("build: %v %v", ints, err)
	}
	for _, resolved := range []bool{false, true} {
		no := notifytest.Notification(resolved)
		if retry, err := ints[0].Notifier.Notify(no.Context(context.Background()), no); err != nil {
			t.Fatalf("resolved=%v: retry=%v err=%v", resolved, retry, err)
		}
	}
	if len(pd.events) != 2 || pd.events[0]["event_type"] != "trigger" || pd.events[1]["event_type"] != "resolve" ||
		pd.events[0]["incident_key"] != pd.events[1]["incident_key"] || pd.events[0]["service_key"] != "abc" {
		t.Fatalf("v1 events: %v", pd.events)
	}
	if len(proxy.hosts) == 0 || proxy.hosts[0] != "events.pagerduty.com:443" {
		t.Fatalf("CONNECT hosts %v, want PagerDuty's v1 endpoint", proxy.hosts)
	}
}

// Alertmanager's own example configurations (shipped by the Debian package
// prometheus-alertmanager, which .ci/run installs) load unchanged and every
// receiver in them builds: nothing an operator copies from Alertmanager's
// documentation is rejected.
func TestAlertmanagerExampleConfigsLoadUnchanged(t *testing.T) {
	examples := []string{"/usr/share/doc/prometheus-alertmanager/examples/simple.yml", "/etc/prometheus/alertmanager.yml"}
	for _, path := range examples {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("%v (CI installs prometheus-alertmanager)", err)
				}
				t.Skipf("%v: apt-get install prometheus-alertmanager", err)
			}
			tn := loadTenant(t, string(src))
			if len(tn.Config.Receivers) < 3 {
				t.Fatalf("only %d receivers: not the example", len(tn.Config.Receivers))
			}
			ext, _ := url.Parse("http://klaxon.example:9095")
			b := NewBuilder(ext)
			for _, rcv := range tn.Config.Receivers {
				if msgs := Unsupported(&rcv); len(msgs) > 0 {
					t.Errorf("receiver %s: %v", rcv.Name, msgs)
				}
				if _, err := b.Build(tn, rcv.Name, bustest.Logger(t)); err != nil {
					t.Errorf("receiver %s: %v", rcv.Name, err)
				}
			}
		})
	}
}
