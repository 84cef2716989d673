package fakes

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
)

// Slack is a fake incoming webhook: POST JSON with a non-empty "text" (or
// "blocks") gets 200 "ok"; anything else gets 400 "invalid_payload" or
// "no_text", as Slack answers.
type Slack struct {
	*httptest.Server
	Path string
	Got  Recorder[string] // the text of each message
}

// NewSlack starts the fake; WebhookURL is what to configure.
func NewSlack() *Slack {
	s := &Slack{Path: "/services/T000/B000/XXXXXXXX"}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// WebhookURL is the incoming-webhook URL of the fake.
func (s *Slack) WebhookURL() string { return s.URL + s.Path }

func (s *Slack) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != s.Path {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "no_service")
		return
	}
	var m struct {
		Text   string          `json:"text"`
		Blocks json.RawMessage `json:"blocks"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&m); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "invalid_payload")
		return
	}
	if m.Text == "" && len(m.Blocks) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "no_text")
		return
	}
	s.Got.add(m.Text)
	_, _ = io.WriteString(w, "ok")
}
