package fakes

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
)

// ReceiverRequest is one request the fake Klaxon receiver accepted.
type ReceiverRequest struct {
	Path   string
	Tenant string
	Header http.Header
	Body   []byte
}

// Receiver is a fake Klaxon receiver that enforces its contract (DESIGN.md
// §3): a valid bearer token or 401, a POST to a known path, a JSON body or
// 400, and a 2xx only for what it stored. Down makes it answer 503 with
// Retry-After, as the real one does when it cannot store.
type Receiver struct {
	*httptest.Server
	Token string
	Got   Recorder[ReceiverRequest]
	down  atomic.Bool
}

// receiverPaths are the ingest endpoints the Lambdas use.
var receiverPaths = map[string]bool{"/api/v1/eventbridge": true, "/api/v1/sns": true, "/api/v2/alerts": true, "/api/v1/alertmanager": true}

// NewReceiver starts the fake on 127.0.0.1.
func NewReceiver(token string) *Receiver {
	r := &Receiver{Token: token}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

// SetDown makes the receiver answer 503 (true) or work again (false).
func (r *Receiver) SetDown(down bool) { r.down.Store(down) }

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || !receiverPaths[req.URL.Path] {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint"})
		return
	}
	if r.Token != "" && req.Header.Get("Authorization") != "Bearer "+r.Token {
		w.Header().Set("WWW-Authenticate", `Bearer realm="klaxon"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or invalid bearer token"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 4<<20+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if len(body) > 4<<20 {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large"})
		return
	}
	if !json.Valid(body) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body is not valid JSON"})
		return
	}
	if r.down.Load() {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "bus unavailable"})
		return
	}
	r.Got.add(ReceiverRequest{Path: req.URL.Path, Tenant: req.Header.Get("X-Scope-OrgID"), Header: req.Header.Clone(), Body: body})
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "success"})
}
