package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/mail"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klaxon-sh/klaxon/e2e/harness"
	"github.com/klaxon-sh/klaxon/e2e/peers"
)

// The Notifiers issue's "done when", against real klaxon processes and the
// fakes of package peers: one firing and then resolved alert routed to
// Slack, email, PagerDuty and a webhook produces exactly one Slack message
// updated on resolve, one email per state, one PagerDuty trigger and one
// resolve with the same dedup_key, and the webhook posts — also with the
// notifier SIGKILLed mid-delivery, at chosen points; an unreachable target
// ends in the DLQ and `klaxonctl dlq replay` delivers it. "Exactly" is
// checked once the notifier's consumer has acked everything, so no later
// redelivery can add to the counts. (notify_test.go has the first, coarser
// version of these tests.)

const (
	nfSlackToken = "xoxb-e2e-bot-token"
	nfPDKey      = "e2e0123456789abcdef0123456789abc" // Events v2 routing keys are 32 characters
	nfSMTPUser   = "klaxon@example.org"
	nfSMTPPass   = "e2e-s3cret"
)

// notifierPeers are the targets of the receiver "everyone".
type notifierPeers struct {
	slack *peers.Slack
	mail  *peers.SMTP
	pd    *peers.PagerDuty
	sink  *harness.Sink
	hook  *peers.Gate // in front of sink, to hold an answer in flight
	rules string
}

func newNotifierPeers(t *testing.T) *notifierPeers {
	p := &notifierPeers{slack: peers.NewSlack(t, nfSlackToken), mail: peers.NewSMTP(t, nfSMTPUser, nfSMTPPass),
		pd: peers.NewPagerDuty(t), sink: harness.NewSink(t)}
	p.hook = peers.NewGate(t, "", p.sink.URL())
	// app_url + app_token is Alertmanager's bot-token mode (it rejects
	// api_url together with app_token); the pipeline delivers the
	// integrations in the order webhook, pagerduty, email, slack.
	p.rules = harness.WriteRules(t, map[string]string{"default/klaxon.yml": fmt.Sprintf(`
route:
  receiver: everyone
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: everyone
    slack_configs:
      - app_url: %s
        app_token: %s
        channel: '#alerts'
        send_resolved: true
    email_configs:
      - to: oncall@example.org
        from: %s
        smarthost: %s
        auth_username: %s
        auth_password: %s
        require_tls: true
        tls_config:
          ca_file: %s
        headers:
          X-Team: payments
        send_resolved: true
    pagerduty_configs:
      - routing_key: %s
        url: %s
    webhook_configs:
      - url: %s/hook
`, p.slack.APIURL(), nfSlackToken, nfSMTPUser, p.mail.Addr, nfSMTPUser, nfSMTPPass, p.mail.CAFile, nfPDKey, p.pd.URL(), p.hook.URL())})
	return p
}

// postCheckoutAlert sends the alert firing (started a minute ago) or resolved.
func postCheckoutAlert(t *testing.T, k *harness.Klaxon, start time.Time, resolved bool) {
	t.Helper()
	ends := ""
	if resolved {
		ends = `,"endsAt":"` + time.Now().UTC().Add(-time.Second).Format(time.RFC3339) + `"`
	}
	body := `[{"labels":{"alertname":"Checkout","severity":"critical","service":"payments"},` +
		`"annotations":{"summary":"checkout is down","runbook_url":"https://runbooks.example.org/checkout"},` +
		`"startsAt":"` + start.Format(time.RFC3339) + `"` + ends + `}]`
	if code, resp := k.Post("/api/v2/alerts", body); code != 200 {
		t.Fatalf("POST /api/v2/alerts: %d %s", code, resp)
	}
}

// firingDelivered / resolvedDelivered: every integration has its message.
func (p *notifierPeers) firingDelivered() bool {
	return len(p.slack.Posts()) == 1 && len(p.mail.Mails()) == 1 && len(p.pd.Events()) == 1 && len(p.sink.Messages()) >= 1
}

func (p *notifierPeers) resolvedDelivered() bool {
	return len(p.slack.Updates()) == 1 && len(p.mail.Mails()) == 2 && len(p.pd.Events()) == 2 && len(p.sink.Unique()) == 2
}

// notifierConsumer reports the notifier's durable consumer on NOTIFY.
func notifierConsumer(t *testing.T, natsAddr string) func() *jetstream.ConsumerInfo {
	nc, err := nats.Connect("nats://"+natsAddr, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return func() *jetstream.ConsumerInfo {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := js.Consumer(ctx, "NOTIFY", "notifier")
		if err != nil {
			return nil
		}
		info, err := c.Info(ctx)
		if err != nil {
			return nil
		}
		return info
	}
}

// awaitNotificationsAcked waits until every notification was handled and acked: after
// that no redelivery can add a message anywhere, so counting is final.
func awaitNotificationsAcked(t *testing.T, consumer func() *jetstream.ConsumerInfo) {
	t.Helper()
	harness.Eventually(t, 30*time.Second, "every notification acked", func() bool {
		ci := consumer()
		return ci != nil && ci.Delivered.Stream > 0 && ci.NumPending == 0 && ci.NumAckPending == 0
	})
}

// checkExactlyOnce asserts the final state after a firing and a resolve.
// webhookResends is how many extra webhook posts the test provoked inside
// the one window where a resend is possible (see TestNotifiersKilledMidDelivery).
func (p *notifierPeers) checkExactlyOnce(t *testing.T, webhookResends int) {
	t.Helper()
	posts, updates := p.slack.Posts(), p.slack.Updates()
	if len(posts) != 1 || len(updates) != 1 || updates[0] != posts[0] {
		t.Errorf("slack: chat.postMessage ts %v, chat.update ts %v: want one message, updated in place on resolve", posts, updates)
	} else {
		m := p.slack.Message(posts[0])
		att, _ := m.Attachments()
		if !strings.Contains(m["text"], "[RESOLVED] Checkout") || len(att) != 1 || att[0].Color != "good" || len(att[0].Blocks.BlockSet) == 0 {
			t.Errorf("slack message after resolve: text %q, attachments %s: want [RESOLVED], green, with blocks", m["text"], m["attachments"])
		}
	}

	mails := p.mail.Mails()
	if len(mails) != 2 {
		t.Fatalf("emails: %d, want one per state (2)", len(mails))
	}
	for i, want := range []string{"[FIRING:1] Checkout", "[RESOLVED] Checkout"} {
		m := mails[i]
		switch {
		case !strings.Contains(m.Subject, want):
			t.Errorf("email %d subject %q, want it to contain %q", i, m.Subject, want)
		case !m.TLS:
			t.Errorf("email %d was not sent over STARTTLS", i)
		case !strings.Contains(m.Parts["text/html"], "Checkout") || !strings.Contains(m.Parts["text/plain"], "checkout is down"):
			t.Errorf("email %d parts: want an HTML and a plain-text part naming the alert, got %d parts:\n%.400s", i, len(m.Parts), m.Raw)
		case m.Header.Get("X-Team") != "payments" || !mailAddressIs(m.Header, "To", "oncall@example.org") || !mailAddressIs(m.Header, "From", nfSMTPUser) || m.Header.Get("Message-Id") == "":
			t.Errorf("email %d headers: X-Team %q To %q From %q Message-Id %q", i, m.Header.Get("X-Team"), m.Header.Get("To"), m.Header.Get("From"), m.Header.Get("Message-Id"))
		case len(m.To) != 1 || m.To[0] != "oncall@example.org" || m.From != nfSMTPUser:
			t.Errorf("email %d envelope: from %q to %v", i, m.From, m.To)
		}
	}
	if mails[0].Header.Get("Message-Id") == mails[1].Header.Get("Message-Id") {
		t.Errorf("firing and resolved emails share Message-Id %s", mails[0].Header.Get("Message-Id"))
	}

	ev := p.pd.Events()
	actions := p.pd.Actions()
	if len(actions) != 1 || p.pd.Rejected() != 0 {
		t.Fatalf("pagerduty: actions per dedup_key %v, %d rejected: want one dedup_key", actions, p.pd.Rejected())
	}
	for key, a := range actions {
		if strings.Join(a, ",") != "trigger,resolve" {
			t.Errorf("pagerduty dedup_key %s: %v, want one trigger then one resolve", key, a)
		}
	}
	if ev[0].RoutingKey != nfPDKey || ev[0].Payload.Severity != "critical" || !strings.Contains(ev[0].Payload.Summary, "Checkout") {
		t.Errorf("pagerduty trigger: routing key %q, payload %+v", ev[0].RoutingKey, ev[0].Payload)
	}

	msgs, unique := p.sink.Messages(), p.sink.Unique()
	if len(unique) != 2 || unique[0].Status != "firing" || unique[1].Status != "resolved" || unique[0].Path != "/hook" {
		t.Errorf("webhook: %d distinct posts %v, want firing then resolved at /hook", len(unique), webhookStatuses(unique))
	}
	if len(msgs) != 2+webhookResends {
		t.Errorf("webhook: %d posts %v, want %d (2 + %d resent in the crash window)", len(msgs), webhookStatuses(msgs), 2+webhookResends, webhookResends)
	}
	for _, m := range msgs[2:] {
		if m.IdempotencyKey != unique[len(unique)-1].IdempotencyKey {
			t.Errorf("resent webhook post has Idempotency-Key %q, want the original's %q", m.IdempotencyKey, unique[len(unique)-1].IdempotencyKey)
		}
	}
}

// mailAddressIs reports whether header field holds exactly the address addr.
func mailAddressIs(h mail.Header, field, addr string) bool {
	l, err := h.AddressList(field)
	return err == nil && len(l) == 1 && l[0].Address == addr
}

func webhookStatuses(ms []harness.WebhookMessage) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Status+"@"+m.IdempotencyKey)
	}
	return out
}

// TestOneAlertThroughAllFourIntegrations: one klaxon process runs
// everything.
func TestNotifiersAllFourOneAlert(t *testing.T) {
	p := newNotifierPeers(t)
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: p.rules, NATSListen: true})
	consumer := notifierConsumer(t, k.NATS)
	start := time.Now().UTC().Add(-time.Minute)

	postCheckoutAlert(t, k, start, false)
	harness.Eventually(t, 20*time.Second, "the firing notification in all four integrations", p.firingDelivered)
	m := p.slack.Message(p.slack.Posts()[0])
	if att, _ := m.Attachments(); m["channel"] != "#alerts" || !strings.Contains(m["text"], "[FIRING:1] Checkout") || len(att) != 1 || att[0].Color != "danger" {
		t.Errorf("slack firing message: channel %q text %q attachments %s", m["channel"], m["text"], m["attachments"])
	}
	if s := p.sink.Messages()[0].Status; s != "firing" {
		t.Errorf("webhook status %q, want firing", s)
	}

	postCheckoutAlert(t, k, start, true)
	harness.Eventually(t, 20*time.Second, "the resolved notification in all four integrations", p.resolvedDelivered)
	awaitNotificationsAcked(t, consumer)
	p.checkExactlyOnce(t, 0)
}

// TestNotifiersKilledMidDelivery runs the notifier as its own process
// (--target=notifier) on the NATS of a receiver+engine process and SIGKILLs
// it twice in the middle of a delivery.
//
// The pipeline delivers a notification's integrations one after the other;
// before each send it looks the integration's idempotency key up in the
// notification log (KV) and after a successful send it records it; the
// JetStream ack comes after the last integration. So:
//   - integrations whose send completed before the kill are recorded and are
//     never sent again when the unacked notification is redelivered (after
//     the consumer's 10 s AckWait) — the first kill lands there: the webhook,
//     PagerDuty and the email are sent, Slack's chat.postMessage is in flight
//     (the workspace has not accepted it) and nothing is acked;
//   - the one window where a resend is possible is between the peer
//     accepting a request and the notifier recording it: the peer's answer
//     lost in a crash. The second kill lands there, deterministically: the
//     webhook target has accepted the resolved post and its answer is held
//     back. The redelivery posts it again, with the same Idempotency-Key
//     header (the receiver's way to drop it), and only then sends the email,
//     the PagerDuty resolve and the Slack update, once each.
func TestNotifiersKilledMidDelivery(t *testing.T) {
	p := newNotifierPeers(t)
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: p.rules, Target: "receiver,engine", NATSListen: true})
	notifier := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: p.rules, Target: "notifier", NATSURL: "nats://" + k.NATS,
		Extra: []string{"--nats.replicas", "1"}})
	consumer := notifierConsumer(t, k.NATS)
	unacked := func() bool { ci := consumer(); return ci != nil && ci.NumAckPending == 1 }
	start := time.Now().UTC().Add(-time.Minute)

	// Kill 1: after three integrations sent, before Slack's post and the ack.
	post := p.slack.HoldNextPost(t)
	postCheckoutAlert(t, k, start, false)
	post.Wait(t, 20*time.Second)
	if w, pd, m := len(p.sink.Messages()), len(p.pd.Events()), len(p.mail.Mails()); w != 1 || pd != 1 || m != 1 || !unacked() {
		t.Fatalf("at the first kill: webhook %d, pagerduty %d, email %d sent, notification unacked %v: want 1, 1, 1, true", w, pd, m, unacked())
	}
	notifier.Kill()
	notifier.Start()
	harness.Eventually(t, 30*time.Second, "the redelivered firing notification posted to Slack", func() bool { return len(p.slack.Posts()) == 1 })
	awaitNotificationsAcked(t, consumer)
	if w, pd, m := len(p.sink.Messages()), len(p.pd.Events()), len(p.mail.Mails()); w != 1 || pd != 1 || m != 1 {
		t.Fatalf("after the redelivery: webhook %d, pagerduty %d, email %d: sent again", w, pd, m)
	}

	// Kill 2: the webhook target accepted the resolved post, its answer is
	// held; nothing else of the resolve is sent yet.
	answer := p.hook.HoldNextAnswer(t)
	postCheckoutAlert(t, k, start, true)
	answer.Wait(t, 20*time.Second)
	if len(p.sink.Messages()) != 2 || len(p.slack.Updates()) != 0 || len(p.mail.Mails()) != 1 || len(p.pd.Events()) != 1 || !unacked() {
		t.Fatalf("at the second kill: webhook %d, slack updates %d, email %d, pagerduty %d, unacked %v: want 2, 0, 1, 1, true",
			len(p.sink.Messages()), len(p.slack.Updates()), len(p.mail.Mails()), len(p.pd.Events()), unacked())
	}
	notifier.Kill()
	notifier.Start()
	harness.Eventually(t, 30*time.Second, "the redelivered resolved notification in all four integrations", p.resolvedDelivered)
	awaitNotificationsAcked(t, consumer)
	p.checkExactlyOnce(t, 1)
}

// TestNotifiersDeadLetterReplay: a webhook target where nothing
// listens fails every attempt; with deliveries cut to 2 the notification
// lands in the DLQ with its reason; once the target is up, `klaxonctl dlq
// replay` delivers it, once, and empties the DLQ.
func TestNotifiersDeadLetterReplay(t *testing.T) {
	addr := harness.FreeAddr(t) // nothing listens here until the target comes up
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": fmt.Sprintf(`
route:
  receiver: flaky
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: flaky
    webhook_configs:
      - url: http://%s/hook
`, addr)})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules, Extra: []string{
		"--notify.max-deliver", "2", "--notify.attempts", "2", "--notify.min-backoff", "20ms", "--notify.max-backoff", "100ms"}})
	if code, body := k.Post("/api/v2/alerts", `[{"labels":{"alertname":"Unreachable","severity":"warning"}}]`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}

	ctl := harness.Binary(t, "klaxonctl")
	type deadLetter struct {
		Seq    json.Number `json:"seq"`
		Letter struct {
			Reason       string `json:"reason"`
			Attempts     int    `json:"attempts"`
			Notification struct {
				Receiver string `json:"receiver"`
			} `json:"notification"`
		} `json:"letter"`
	}
	list := func() ([]deadLetter, error) {
		out, err := exec.Command(ctl, "--addr", k.GRPC, "--output", "json", "dlq", "list").Output()
		if err != nil {
			return nil, err
		}
		var resp struct {
			DeadLetters []deadLetter `json:"dead_letters"`
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		err = dec.Decode(&resp)
		return resp.DeadLetters, err
	}
	var letters []deadLetter
	harness.Eventually(t, 20*time.Second, "the notification in the DLQ", func() bool {
		var err error
		letters, err = list()
		return err == nil && len(letters) > 0
	})
	if l := letters[0].Letter; len(letters) != 1 || l.Reason != "networkError" || l.Attempts != 2 || l.Notification.Receiver != "flaky" {
		t.Fatalf("dead letters %+v: want one, networkError after 2 deliveries, receiver flaky", letters)
	}

	sink := harness.NewSink(t)
	peers.NewGate(t, addr, sink.URL()) // the target comes up where the config points
	if out, err := exec.Command(ctl, "--addr", k.GRPC, "dlq", "replay", letters[0].Seq.String()).CombinedOutput(); err != nil {
		t.Fatalf("klaxonctl dlq replay %s: %v\n%s", letters[0].Seq, err, out)
	}
	harness.Eventually(t, 20*time.Second, "the replayed notification delivered", func() bool {
		return sink.AlertsByLabel("alertname", "firing")["Unreachable"] == 1
	})
	harness.Eventually(t, 10*time.Second, "the DLQ empty after the replay", func() bool {
		l, err := list()
		return err == nil && len(l) == 0
	})
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("webhook posts after replay: %d, want 1", n)
	}
}
