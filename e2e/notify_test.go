package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// slackFake speaks the two Web API methods Klaxon uses and records them.
type slackFake struct {
	srv     *httptest.Server
	mu      sync.Mutex
	posts   []string // ts of each chat.postMessage
	updates []string // ts of each chat.update
	n       int
}

func newSlackFake(t *testing.T) *slackFake {
	f := &slackFake{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		tok := r.Header.Get("Authorization")
		if tok != "Bearer xoxb-test" && r.FormValue("token") != "xoxb-test" {
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/chat.postMessage"):
			f.n++
			ts := fmt.Sprintf("1700000000.%06d", f.n)
			f.posts = append(f.posts, ts)
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": "C123", "ts": ts})
		case strings.HasSuffix(r.URL.Path, "/chat.update"):
			ts := r.FormValue("ts")
			f.updates = append(f.updates, ts)
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": "C123", "ts": ts})
		default:
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "unknown_method"})
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *slackFake) counts() (posts, updates []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.posts...), append([]string(nil), f.updates...)
}

// pdFake enforces the Events API v2 contract and counts by dedup_key.
type pdFake struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events map[string][]string // dedup_key → actions
}

func newPDFake(t *testing.T) *pdFake {
	f := &pdFake{events: map[string][]string{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			RoutingKey  string `json:"routing_key"`
			EventAction string `json:"event_action"`
			DedupKey    string `json:"dedup_key"`
			Payload     *struct {
				Summary  string `json:"summary"`
				Source   string `json:"source"`
				Severity string `json:"severity"`
			} `json:"payload"`
		}
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil || len(ev.RoutingKey) != 32 || ev.DedupKey == "" ||
			(ev.EventAction != "trigger" && ev.EventAction != "resolve") ||
			(ev.EventAction == "trigger" && (ev.Payload == nil || ev.Payload.Summary == "" || len(ev.Payload.Summary) > 1024 || ev.Payload.Source == "" || ev.Payload.Severity == "")) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"status":"invalid event","message":"Event object is invalid"}`))
			return
		}
		f.mu.Lock()
		f.events[ev.DedupKey] = append(f.events[ev.DedupKey], ev.EventAction)
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_, _ = fmt.Fprintf(w, `{"status":"success","message":"Event processed","dedup_key":%q}`, ev.DedupKey)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *pdFake) snapshot() map[string][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]string{}
	for k, v := range f.events {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// smtpSink is a real SMTP server (go-smtp) that keeps every message.
type smtpSink struct {
	addr string
	mu   sync.Mutex
	msgs []string
}

type smtpSession struct{ s *smtpSink }

func (smtpSession) Mail(string, *smtp.MailOptions) error { return nil }
func (smtpSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ss smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, string(b))
	ss.s.mu.Unlock()
	return nil
}
func (smtpSession) Reset()        {}
func (smtpSession) Logout() error { return nil }

func newSMTPSink(t *testing.T) *smtpSink {
	s := &smtpSink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return smtpSession{s}, nil }))
	srv.Domain = "localhost"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func (s *smtpSink) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// TestOneAlertThroughAllFourIntegrations is the Notifiers issue's "done
// when": one firing and then resolved alert routed to Slack, email,
// PagerDuty and a webhook produces one Slack message updated on resolve, one
// email per state, one PagerDuty trigger and one resolve with the same
// dedup_key, and the webhook posts.
func TestOneAlertThroughAllFourIntegrations(t *testing.T) {
	testAllFour(t, false)
}

// TestAllFourWithNotifierKilled: the same with the notifier in its own
// process, SIGKILLed after the firing notifications went out and restarted:
// redelivery never sends a second Slack message, email or trigger.
func TestAllFourWithNotifierKilled(t *testing.T) {
	testAllFour(t, true)
}

func testAllFour(t *testing.T, kill bool) {
	slack, pd, mail, hook := newSlackFake(t), newPDFake(t), newSMTPSink(t), harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": fmt.Sprintf(`
route:
  receiver: everyone
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: everyone
    slack_configs:
      - app_url: %s/
        app_token: xoxb-test
        channel: '#alerts'
        send_resolved: true
    email_configs:
      - to: oncall@example.com
        from: klaxon@example.com
        smarthost: %s
        require_tls: false
        send_resolved: true
    pagerduty_configs:
      - routing_key: 0123456789abcdef0123456789abcdef
        url: %s/v2/enqueue
    webhook_configs:
      - url: %s/hook
`, slack.srv.URL, mail.addr, pd.srv.URL, hook.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})
	var notifier *harness.Klaxon
	if kill {
		k.Stop()
		k = harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Target: "receiver,engine", NATSListen: true})
		notifier = harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Target: "notifier", NATSURL: "nats://" + k.NATS,
			Extra: []string{"--nats.replicas", "1"}})
	}
	start := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	if code, body := k.Post("/api/v2/alerts", `[{"labels":{"alertname":"Checkout","severity":"critical"},"annotations":{"summary":"checkout is down"},"startsAt":"`+start+`"}]`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	harness.Eventually(t, 20*time.Second, "the firing notification in all four", func() bool {
		posts, _ := slack.counts()
		return len(posts) == 1 && len(mail.messages()) == 1 && len(pd.snapshot()) == 1 && len(hook.Messages()) == 1
	})
	if kill {
		// Killed right after sending: at most the JetStream ack is lost, and
		// the idempotency log makes the redelivery a no-op.
		notifier.Kill()
		notifier.Start()
	}
	end := time.Now().UTC().Format(time.RFC3339)
	if code, body := k.Post("/api/v2/alerts", `[{"labels":{"alertname":"Checkout","severity":"critical"},"startsAt":"`+start+`","endsAt":"`+end+`"}]`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	harness.Eventually(t, 20*time.Second, "the resolved notification in all four", func() bool {
		_, updates := slack.counts()
		return len(updates) == 1 && len(mail.messages()) == 2 && len(hook.Messages()) == 2
	})
	posts, updates := slack.counts()
	if len(posts) != 1 || len(updates) != 1 || updates[0] != posts[0] {
		t.Errorf("slack: posts %v updates %v: want one message, updated in place on resolve", posts, updates)
	}
	ev := pd.snapshot()
	if len(ev) != 1 {
		t.Fatalf("pagerduty dedup keys: %v", ev)
	}
	for key, actions := range ev {
		if strings.Join(actions, ",") != "trigger,resolve" || len(key) > 255 {
			t.Errorf("pagerduty %s: %v, want one trigger then one resolve", key, actions)
		}
	}
	msgs := mail.messages()
	if !strings.Contains(msgs[0], "FIRING") || !strings.Contains(msgs[1], "RESOLVED") || !strings.Contains(msgs[0], "text/html") || !strings.Contains(msgs[0], "text/plain") {
		t.Errorf("emails: want a firing then a resolved message with HTML and text parts:\n%s\n---\n%s", head(msgs[0]), head(msgs[1]))
	}
	if s := []string{hook.Messages()[0].Status, hook.Messages()[1].Status}; s[0] != "firing" || s[1] != "resolved" {
		t.Errorf("webhook statuses %v", s)
	}
}

func head(s string) string {
	if len(s) > 600 {
		return s[:600]
	}
	return s
}

// TestUnreachableTargetDeadLettersAndReplays: a target that keeps failing
// ends in the dead-letter queue; `klaxonctl dlq replay` delivers it once the
// target is back.
func TestUnreachableTargetDeadLettersAndReplays(t *testing.T) {
	sink := harness.NewSink(t)
	sink.SetDown(true)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Extra: []string{
		"--notify.max-deliver", "2", "--notify.attempts", "1", "--notify.min-backoff", "20ms", "--notify.max-backoff", "100ms"}})
	if code, body := k.Post("/api/v2/alerts", `[{"labels":{"alertname":"Unreachable"}}]`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	ctl := harness.Binary(t, "klaxonctl")
	var seq string
	harness.Eventually(t, 20*time.Second, "the notification in the DLQ", func() bool {
		out, err := exec.Command(ctl, "--addr", k.GRPC, "--output", "json", "dlq", "list").Output()
		if err != nil {
			return false
		}
		var resp struct {
			DeadLetters []struct {
				Seq json.Number `json:"seq"`
			} `json:"dead_letters"`
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		if dec.Decode(&resp) != nil || len(resp.DeadLetters) == 0 {
			return false
		}
		seq = resp.DeadLetters[0].Seq.String()
		return seq != ""
	})
	sink.SetDown(false)
	if out, err := exec.Command(ctl, "--addr", k.GRPC, "dlq", "replay", seq).CombinedOutput(); err != nil {
		t.Fatalf("klaxonctl dlq replay %s: %v\n%s", seq, err, out)
	}
	harness.Eventually(t, 20*time.Second, "the replayed notification delivered", func() bool {
		return sink.AlertsByLabel("alertname", "firing")["Unreachable"] == 1
	})
}
