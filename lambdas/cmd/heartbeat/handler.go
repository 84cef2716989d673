package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/klaxon-sh/klaxon/lambdas/alerting"
)

// Recorder stores heartbeats; *alerting.Store implements it.
type Recorder interface {
	Record(ctx context.Context, source string, at time.Time) (bool, error)
}

// Handler serves the function URL that Alertmanager's webhook posts to.
type Handler struct {
	// TokenHash is the SHA-256 of the shared bearer token. Comparing hashes
	// in constant time hides the token's length as well as its bytes.
	TokenHash [32]byte
	Store     Recorder
	Now       func() time.Time
	// Alertnames are the alerts that count as a heartbeat ("*": any).
	Alertnames []string
	// SourceLabel names the label that identifies the source when the URL
	// path does not.
	SourceLabel string
	MaxBody     int
	Log         *slog.Logger
}

var sourceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

type reply struct {
	Recorded []string `json:"recorded,omitempty"`
	Current  []string `json:"current,omitempty"` // a newer beat was already stored
	Error    string   `json:"error,omitempty"`
}

func respond(code int, r reply) events.LambdaFunctionURLResponse {
	b, _ := json.Marshal(r)
	resp := events.LambdaFunctionURLResponse{
		StatusCode: code,
		Headers:    map[string]string{"Content-Type": "application/json"},
		Body:       string(b),
	}
	if code == http.StatusUnauthorized {
		resp.Headers["WWW-Authenticate"] = `Bearer realm="klaxon-heartbeat"`
	}
	return resp
}

// Handle is the Lambda entry point. Status codes follow what Alertmanager
// does with them: it retries 5xx and drops 4xx, so a DynamoDB failure is a
// 503 and a bad request is a 4xx.
func (h *Handler) Handle(ctx context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	if req.RequestContext.HTTP.Method != http.MethodPost {
		return respond(http.StatusMethodNotAllowed, reply{Error: "use POST"}), nil
	}
	if !h.authorized(req.Headers) {
		h.Log.Warn("heartbeat rejected: bad or missing bearer token", "sourceIp", req.RequestContext.HTTP.SourceIP)
		return respond(http.StatusUnauthorized, reply{Error: "missing or invalid bearer token"}), nil
	}
	body := []byte(req.Body)
	if req.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(req.Body); err != nil {
			return respond(http.StatusBadRequest, reply{Error: "body: invalid base64"}), nil
		}
	}
	if len(body) > h.MaxBody {
		return respond(http.StatusRequestEntityTooLarge, reply{Error: "body too large"}), nil
	}
	wh, err := alerting.ParseWebhook(body)
	if err != nil {
		return respond(http.StatusBadRequest, reply{Error: err.Error()}), nil
	}
	sources, err := h.sources(req.RawPath, wh)
	if err != nil {
		return respond(http.StatusBadRequest, reply{Error: err.Error()}), nil
	}
	if len(sources) == 0 {
		// A resolved Watchdog is not a heartbeat; accept it so Alertmanager
		// does not retry, and let the dead-man switch judge the silence.
		return respond(http.StatusOK, reply{}), nil
	}
	now := h.Now()
	var r reply
	for _, src := range sources {
		changed, err := h.Store.Record(ctx, src, now)
		if err != nil {
			h.Log.Error("heartbeat not stored", "source", src, "err", err)
			return respond(http.StatusServiceUnavailable, reply{Error: "heartbeat store unavailable"}), nil
		}
		if changed {
			r.Recorded = append(r.Recorded, src)
		} else {
			r.Current = append(r.Current, src)
		}
	}
	h.Log.Debug("heartbeat recorded", "sources", sources)
	return respond(http.StatusOK, r), nil
}

// authorized checks "Authorization: Bearer <token>". Function URL events
// carry header names in lower case.
func (h *Handler) authorized(headers map[string]string) bool {
	auth := headers["authorization"]
	if auth == "" {
		auth = headers["Authorization"]
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return false
	}
	sum := tokenHash(token)
	return subtle.ConstantTimeCompare(sum[:], h.TokenHash[:]) == 1
}

// tokenHash is the hash a bearer token is compared by, surrounding space
// trimmed on both sides: the configured token (an SSM value written from a
// file ends in a newline) as the one a request sends. Trimmed only on the
// request's side, a stored token with a newline refused every heartbeat,
// the table stayed empty, and the dead-man switch was never armed.
func tokenHash(token string) [32]byte { return sha256.Sum256([]byte(strings.TrimSpace(token))) }

// sources names what the heartbeat is for: the URL path (…lambda-url…/prod-eu)
// when given, else each firing heartbeat alert's SourceLabel.
func (h *Handler) sources(rawPath string, wh *alerting.Webhook) ([]string, error) {
	var firing []alerting.WebhookAlert
	for _, a := range wh.Alerts {
		if a.Status == "firing" && (slices.Contains(h.Alertnames, "*") || slices.Contains(h.Alertnames, a.Labels["alertname"])) {
			firing = append(firing, a)
		}
	}
	if len(firing) == 0 {
		return nil, nil
	}
	if p := strings.Trim(rawPath, "/"); p != "" {
		if !sourceRE.MatchString(p) {
			return nil, errInvalidSource(p)
		}
		return []string{p}, nil
	}
	var out []string
	for _, a := range firing {
		src := a.Labels[h.SourceLabel]
		if src == "" {
			return nil, errNoSource(h.SourceLabel)
		}
		if !sourceRE.MatchString(src) {
			return nil, errInvalidSource(src)
		}
		if !slices.Contains(out, src) {
			out = append(out, src)
		}
	}
	return out, nil
}

type sourceError string

func (e sourceError) Error() string { return string(e) }

func errInvalidSource(s string) error {
	return sourceError("source " + strconv.Quote(s) + ": must match " + sourceRE.String())
}

func errNoSource(label string) error {
	return sourceError("no source: post to <function URL>/<source> or give the alert a " + strconv.Quote(label) + " label")
}
