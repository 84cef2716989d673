package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	amconfig "github.com/prometheus/alertmanager/config"
	amcommoncfg "github.com/prometheus/alertmanager/config/common"
	commoncfg "github.com/prometheus/common/config"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"

	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/notify"
	"github.com/klaxon-sh/klaxon/services/notify/notifytest"
)

const token = "xoxb-test-token"

// workspace extends slacktest's server with what it lacks: unique message ts
// (its own are whole seconds and collide), chat.update, the bot-token check,
// and rate-limited answers.
type workspace struct {
	mu       sync.Mutex
	seq      int
	messages map[string]form // ts -> last form posted or updated
	posts    int
	updates  int
	limited  int // answer 429 to this many calls first
	srv      *slacktest.Server
}

// form is one posted message, field by field.
type form = map[string]string

func newWorkspace(t *testing.T) *workspace {
	w := &workspace{messages: map[string]form{}}
	w.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", w.handle(false))
		c.Handle("/chat.update", w.handle(true))
	})
	w.srv.Start()
	t.Cleanup(w.srv.Stop)
	return w
}

func (w *workspace) handle(update bool) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.limited > 0 {
			w.limited--
			rw.Header().Set("Retry-After", "1")
			rw.WriteHeader(http.StatusTooManyRequests)
			return
		}
		reply := func(v map[string]any) {
			rw.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(rw).Encode(v)
		}
		if err := r.ParseForm(); err != nil {
			reply(map[string]any{"ok": false, "error": "invalid_form_data"})
			return
		}
		// Slack takes the token as a bearer header or a form field.
		if r.Header.Get("Authorization") != "Bearer "+token && r.PostForm.Get("token") != token {
			reply(map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		f := form{}
		for k := range r.PostForm {
			f[k] = r.PostForm.Get(k)
		}
		channel := f["channel"]
		if channel == "#nowhere" {
			reply(map[string]any{"ok": false, "error": "channel_not_found"})
			return
		}
		if att := f["attachments"]; att != "" {
			var a []slack.Attachment
			if err := json.Unmarshal([]byte(att), &a); err != nil {
				reply(map[string]any{"ok": false, "error": "invalid_attachments"})
				return
			}
		}
		if update {
			if channel != "C0ALERTS" {
				reply(map[string]any{"ok": false, "error": "channel_not_found"})
				return
			}
			if _, ok := w.messages[f["ts"]]; !ok {
				reply(map[string]any{"ok": false, "error": "message_not_found"})
				return
			}
			w.updates++
			w.messages[f["ts"]] = f
			reply(map[string]any{"ok": true, "channel": channel, "ts": f["ts"], "text": f["text"]})
			return
		}
		w.posts++
		w.seq++
		ts := fmt.Sprintf("%d.%06d", time.Now().Unix(), w.seq)
		w.messages[ts] = f
		// Slack answers with the channel id, not the #name that was posted to.
		reply(map[string]any{"ok": true, "channel": "C0ALERTS", "ts": ts})
	}
}

func botConfig(w *workspace) *amconfig.SlackConfig {
	c := amconfig.DefaultSlackConfig
	c.AppToken = token
	c.APIURL = &amcommoncfg.SecretURL{URL: amcommoncfg.MustParseURL(w.srv.GetAPIURL() + "chat.postMessage").URL}
	c.Channel = "#alerts"
	c.HTTPConfig = &commoncfg.DefaultHTTPClientConfig
	return &c
}

// Each firing notification is a new message; the resolve updates the
// group's last one (it turns green) and forgets it.
func TestPostThenUpdateOnResolve(t *testing.T) {
	w := newWorkspace(t)
	b := bustest.New(t)
	ctx := context.Background()
	kv, err := b.KV(ctx, bus.BucketSlackRefs, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(botConfig(w), notifytest.Template(t), bustest.Logger(t), WithRefs(kv, "default/team-a/0"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(ctx, notifytest.Notification(false)); err != nil {
		t.Fatal(err)
	}
	// A second group posts its own message.
	other := notifytest.Notification(false)
	other.GroupKey = "other"
	if _, err := n.Notify(ctx, other); err != nil {
		t.Fatal(err)
	}
	// The group notified again while firing (a new alert in it, its
	// repeat_interval reminder, or firing again after a resolve skipped
	// by send_resolved false): a new message, which the channel sees; an
	// edit of the first notified no one.
	if _, err := n.Notify(ctx, notifytest.Notification(false)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(ctx, notifytest.Notification(true)); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.posts != 3 || w.updates != 1 {
		t.Fatalf("posts=%d updates=%d, want 3 and 1 (the resolve)", w.posts, w.updates)
	}
	var resolved form
	for _, m := range w.messages {
		if strings.Contains(m["text"], "RESOLVED") {
			resolved = m
		}
	}
	if resolved == nil || !strings.Contains(resolved["attachments"], `"color":"good"`) || !strings.Contains(resolved["attachments"], "Resolved") {
		t.Fatalf("no message updated to resolved: %v", w.messages)
	}
	// The ref is gone: the next firing of the group is a new message.
	if _, err := kv.Get(ctx, n.refKey(notifytest.Notification(false))); err == nil {
		t.Fatal("ref kept after resolve")
	}
}

func TestRateLimitedAnswerIsRetriedAfterRetryAfter(t *testing.T) {
	w := newWorkspace(t)
	w.limited = 1
	n, err := New(botConfig(w), notifytest.Template(t), bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	retry, err := n.Notify(context.Background(), notifytest.Notification(false))
	if !retry || notify.ReasonOf(err) != notify.ReasonRateLimited || notify.RetryAfterOf(err) != time.Second {
		t.Fatalf("retry=%v reason=%s after=%v err=%v", retry, notify.ReasonOf(err), notify.RetryAfterOf(err), err)
	}
	if retry, err := n.Notify(context.Background(), notifytest.Notification(false)); err != nil {
		t.Fatalf("after the limit: retry=%v err=%v", retry, err)
	}
}

func TestSlackErrorsAreNotRetried(t *testing.T) {
	w := newWorkspace(t)
	for name, mod := range map[string]func(*amconfig.SlackConfig){
		"unknown channel": func(c *amconfig.SlackConfig) { c.Channel = "#nowhere" },
		"bad token":       func(c *amconfig.SlackConfig) { c.AppToken = "xoxb-wrong" },
	} {
		t.Run(name, func(t *testing.T) {
			c := botConfig(w)
			mod(c)
			n, err := New(c, notifytest.Template(t), bustest.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			retry, err := n.Notify(context.Background(), notifytest.Notification(false))
			if retry || notify.ReasonOf(err) != notify.ReasonClientError {
				t.Fatalf("retry=%v err=%v", retry, err)
			}
		})
	}
}

func TestIncomingWebhookStatusMatrix(t *testing.T) {
	for _, tc := range []struct {
		status int
		retry  bool
		ok     bool
	}{
		{200, false, true}, {400, false, false}, {403, false, false}, {404, false, false},
		{410, false, false}, {429, true, false}, {500, true, false}, {503, true, false},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			var got map[string]any
			srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if err := json.Unmarshal(body, &got); err != nil || r.Header.Get("Content-Type") != "application/json" {
					rw.WriteHeader(http.StatusBadRequest)
					return
				}
				if tc.status == 429 {
					rw.Header().Set("Retry-After", "3")
				}
				rw.WriteHeader(tc.status)
				_, _ = io.WriteString(rw, "ok")
			}))
			defer srv.Close()
			c := amconfig.DefaultSlackConfig
			c.APIURL = &amcommoncfg.SecretURL{URL: amcommoncfg.MustParseURL(srv.URL + "/services/T0/B0/secret").URL}
			n, err := New(&c, notifytest.Template(t), bustest.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			retry, err := n.Notify(context.Background(), notifytest.Notification(false))
			if retry != tc.retry || (err == nil) != tc.ok {
				t.Fatalf("retry=%v err=%v", retry, err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks the webhook URL: %v", err)
			}
			if tc.status == 429 && notify.RetryAfterOf(err) != 3*time.Second {
				t.Fatalf("Retry-After not honoured: %v", notify.RetryAfterOf(err))
			}
			if att, _ := got["attachments"].([]any); len(att) != 1 {
				t.Fatalf("webhook body: %v", got)
			}
		})
	}
}

func TestGoldenBlocks(t *testing.T) {
	c := amconfig.DefaultSlackConfig
	c.AppToken = token
	c.Channel = "#alerts"
	n, err := New(&c, notifytest.Template(t), bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		resolved bool
	}{{"firing", false}, {"resolved", true}} {
		m, err := n.render(notifytest.Notification(tc.resolved))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.MarshalIndent(m, "", "  ")
		notifytest.Golden(t, "slack_"+tc.name, append(b, '\n'))
	}
}

func TestAPIRoot(t *testing.T) {
	for in, want := range map[string]string{
		"https://slack.com/api/chat.postMessage": "https://slack.com/api/",
		"http://127.0.0.1:1/api/":                "http://127.0.0.1:1/api/",
		"http://proxy.internal/slack":            "http://proxy.internal/slack/",
	} {
		c := amconfig.SlackConfig{APIURL: &amcommoncfg.SecretURL{URL: amcommoncfg.MustParseURL(in).URL}}
		if got := apiRoot(&c); got != want {
			t.Errorf("apiRoot(%s) = %s, want %s", in, got, want)
		}
	}
}
