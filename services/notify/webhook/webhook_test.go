package webhook

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/alertmanager/alert"
	amcommoncfg "github.com/prometheus/alertmanager/config/common"
	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/notify"
	"github.com/klaxon-sh/klaxon/services/notify/notifytest"
)

// receiver decodes Alertmanager webhook v4 bodies exactly and checks the
// request the way the configured endpoint would.
type receiver struct {
	got  []amwebhook.Message
	auth []string
	urls []string
	keys []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m amwebhook.Message
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if r.Header.Get("Content-Type") != "application/json" || dec.Decode(&m) != nil || m.Version != "4" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.got = append(rc.got, m)
	rc.auth = append(rc.auth, r.Header.Get("Authorization"))
	rc.urls = append(rc.urls, r.URL.String())
	rc.keys = append(rc.keys, r.Header.Get("Idempotency-Key"))
}

func notifier(t *testing.T, u string, mod func(*amwebhook.WebhookConfig)) *Notifier {
	t.Helper()
	hc := commoncfg.DefaultHTTPClientConfig
	c := &amwebhook.WebhookConfig{URL: amcommoncfg.SecretTemplateURL(u), HTTPConfig: &hc}
	if mod != nil {
		mod(c)
	}
	n, err := New(c, notifytest.Template(t), bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func threeAlerts() *notify.Notification {
	no := notifytest.Notification(false)
	for _, inst := range []string{"api-2", "api-3"} {
		a := *no.Alerts[0]
		a.Labels = a.Labels.Clone()
		a.Labels["instance"] = model.LabelValue(inst)
		no.Alerts = append(no.Alerts, &alert.Alert{Alert: a.Alert})
	}
	return no
}

func TestV4BodyAndMaxAlerts(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	n := notifier(t, srv.URL, func(c *amwebhook.WebhookConfig) { c.MaxAlerts = 1 })
	if _, err := n.Notify(context.Background(), threeAlerts()); err != nil {
		t.Fatal(err)
	}
	m := rc.got[0]
	if len(m.Alerts) != 1 || m.TruncatedAlerts != 2 || m.Status != "firing" || m.GroupKey == "" || m.Receiver != "team-a" {
		t.Fatalf("body: alerts=%d truncated=%d status=%s key=%q receiver=%q", len(m.Alerts), m.TruncatedAlerts, m.Status, m.GroupKey, m.Receiver)
	}
	if m.ExternalURL != "http://klaxon.example:9095" || m.Alerts[0].Fingerprint == "" {
		t.Fatalf("body: %+v", m)
	}
	if rc.keys[0] != "k1" {
		t.Fatalf("Idempotency-Key header %q, want the notification's key", rc.keys[0])
	}
}

func TestHTTPConfigAuth(t *testing.T) {
	for name, tc := range map[string]struct {
		mod  func(*commoncfg.HTTPClientConfig)
		want string
	}{
		"bearer": {func(h *commoncfg.HTTPClientConfig) {
			h.Authorization = &commoncfg.Authorization{Type: "Bearer", Credentials: "tok-123"}
		}, "Bearer tok-123"},
		"basic": {func(h *commoncfg.HTTPClientConfig) {
			h.BasicAuth = &commoncfg.BasicAuth{Username: "u", Password: "p"}
		}, "Basic dTpw"},
	} {
		t.Run(name, func(t *testing.T) {
			rc := &receiver{}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			n := notifier(t, srv.URL, func(c *amwebhook.WebhookConfig) { tc.mod(c.HTTPConfig) })
			if _, err := n.Notify(context.Background(), notifytest.Notification(false)); err != nil {
				t.Fatal(err)
			}
			if rc.auth[0] != tc.want {
				t.Fatalf("Authorization %q, want %q", rc.auth[0], tc.want)
			}
		})
	}
}

func TestHTTPConfigTLS(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewTLSServer(rc)
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	// Without the CA the certificate is refused (and retried: it may be a
	// rotation in progress).
	if retry, err := notifier(t, srv.URL, nil).Notify(context.Background(), notifytest.Notification(false)); err == nil || !retry {
		t.Fatalf("untrusted TLS accepted: retry=%v err=%v", retry, err)
	}
	n := notifier(t, srv.URL, func(c *amwebhook.WebhookConfig) { c.HTTPConfig.TLSConfig = commoncfg.TLSConfig{CAFile: ca} })
	if _, err := n.Notify(context.Background(), notifytest.Notification(false)); err != nil {
		t.Fatal(err)
	}
	if len(rc.got) != 1 {
		t.Fatalf("got %d", len(rc.got))
	}
}

func TestHTTPConfigProxy(t *testing.T) {
	rc := &receiver{}
	proxy := httptest.NewServer(rc) // a forward proxy sees the absolute URL
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	n := notifier(t, "http://hooks.internal.example/alert?token=s3cret", func(c *amwebhook.WebhookConfig) {
		c.HTTPConfig.ProxyURL = commoncfg.URL{URL: pu}
	})
	if _, err := n.Notify(context.Background(), notifytest.Notification(false)); err != nil {
		t.Fatal(err)
	}
	if rc.urls[0] != "http://hooks.internal.example/alert?token=s3cret" {
		t.Fatalf("proxy saw %q", rc.urls[0])
	}
}

func TestErrorsDoNotLeakTheURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // connection refused from now on
	retry, err := notifier(t, addr+"/hook?token=s3cret", nil).Notify(context.Background(), notifytest.Notification(false))
	if err == nil || !retry || notify.ReasonOf(err) != notify.ReasonNetwork {
		t.Fatalf("retry=%v err=%v", retry, err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error leaks the URL: %v", err)
	}
}

func TestStatusRetryMatrix(t *testing.T) {
	for _, tc := range []struct {
		status int
		retry  bool
		ok     bool
	}{{200, false, true}, {204, false, true}, {400, false, false}, {401, false, false}, {404, false, false},
		{408, true, false}, {429, true, false}, {500, true, false}, {503, true, false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tc.status) }))
		retry, err := notifier(t, srv.URL, nil).Notify(context.Background(), notifytest.Notification(false))
		srv.Close()
		if retry != tc.retry || (err == nil) != tc.ok {
			t.Errorf("status %d: retry=%v err=%v", tc.status, retry, err)
		}
	}
}
