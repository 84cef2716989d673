package peers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// SlackChannelID is the id the workspace answers for every channel posted
// to, as Slack answers with the id and not the #name.
const SlackChannelID = "C0ALERTS"

// SlackMessage is one message as the workspace keeps it: the form fields of
// its last chat.postMessage or chat.update.
type SlackMessage map[string]string

// Attachments decodes the message's attachments (Klaxon's Block Kit blocks
// live in its one attachment, which carries the status colour).
func (m SlackMessage) Attachments() ([]slack.Attachment, error) {
	var a []slack.Attachment
	if m["attachments"] == "" {
		return nil, nil
	}
	err := json.Unmarshal([]byte(m["attachments"]), &a)
	return a, err
}

// Slack is a workspace behind slack-go's slacktest server, extended with
// what that server lacks: message ts unique per message (its own are whole
// seconds and collide), chat.update of a posted message, the bot-token
// check, and holding a chat.postMessage in flight.
type Slack struct {
	Token string
	srv   *slacktest.Server

	mu       sync.Mutex
	seq      int
	messages map[string]SlackMessage
	posts    []string // ts of each chat.postMessage, in order
	updates  []string // ts of each chat.update, in order
	hold     holds
}

// NewSlack starts a workspace that accepts the bot token token.
func NewSlack(t testing.TB, token string) *Slack {
	s := &Slack{Token: token, messages: map[string]SlackMessage{}}
	s.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", s.handle(false))
		c.Handle("/chat.update", s.handle(true))
	})
	s.srv.Start()
	t.Cleanup(s.srv.Stop)
	return s
}

// APIURL is the Web API root (…/), for slack_configs' app_url.
func (s *Slack) APIURL() string { return s.srv.GetAPIURL() }

// HoldNextPost keeps the next chat.postMessage in flight before the
// workspace accepts it: released, it is posted; if the client goes away
// first (the notifier was killed), nothing is posted, as when a request
// never completes.
func (s *Slack) HoldNextPost(t testing.TB) *Hold {
	h := s.hold.arm()
	t.Cleanup(h.Release)
	return h
}

// Posts returns the ts of every chat.postMessage, in order.
func (s *Slack) Posts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.posts...)
}

// Updates returns the ts of every chat.update, in order.
func (s *Slack) Updates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.updates...)
}

// Message returns the message with ts as last posted or updated.
func (s *Slack) Message(ts string) SlackMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.messages[ts]
}

func (s *Slack) handle(update bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		reply := func(v map[string]any) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(v)
		}
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		if err := r.ParseForm(); err != nil {
			reply(map[string]any{"ok": false, "error": "invalid_form_data"})
			return
		}
		// Slack takes the token as a bearer header or a form field.
		if r.Header.Get("Authorization") != "Bearer "+s.Token && r.PostForm.Get("token") != s.Token {
			reply(map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		m := SlackMessage{}
		for k := range r.PostForm {
			m[k] = r.PostForm.Get(k)
		}
		if m["channel"] == "" {
			reply(map[string]any{"ok": false, "error": "channel_not_found"})
			return
		}
		if m["text"] == "" && m["blocks"] == "" && m["attachments"] == "" {
			reply(map[string]any{"ok": false, "error": "no_text"})
			return
		}
		if _, err := m.Attachments(); err != nil {
			reply(map[string]any{"ok": false, "error": "invalid_attachments"})
			return
		}
		if !update {
			if h := s.hold.take(); h != nil && !h.block(r.Context()) {
				return // the client is gone: the message was never posted
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if update {
			// chat.update names the channel by id and the message by ts.
			if m["channel"] != SlackChannelID {
				reply(map[string]any{"ok": false, "error": "channel_not_found"})
				return
			}
			if _, ok := s.messages[m["ts"]]; !ok {
				reply(map[string]any{"ok": false, "error": "message_not_found"})
				return
			}
			s.updates = append(s.updates, m["ts"])
			s.messages[m["ts"]] = m
			reply(map[string]any{"ok": true, "channel": SlackChannelID, "ts": m["ts"], "text": m["text"]})
			return
		}
		s.seq++
		ts := fmt.Sprintf("1700000000.%06d", s.seq)
		s.posts = append(s.posts, ts)
		s.messages[ts] = m
		reply(map[string]any{"ok": true, "channel": SlackChannelID, "ts": ts})
	}
}
