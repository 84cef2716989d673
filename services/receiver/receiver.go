// Package receiver is Klaxon's HTTP ingest. Each source format has its own
// file that turns a request body into envelopes; this file holds what they
// share: limits, tenants, auth, errors and the rule that a 2xx is only sent
// after JetStream has acknowledged every envelope of the request.
package receiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// DefaultMaxBodyBytes is the default request body limit (4 MiB).
const DefaultMaxBodyBytes = 4 << 20

// DefaultTenant is used when auth is off and no X-Scope-OrgID is sent.
const DefaultTenant = "default"

// Publisher stores messages durably; *bus.Bus implements it.
type Publisher interface {
	Publish(ctx context.Context, msgs ...bus.Message) ([]bus.Result, error)
}

// Authenticator decides which tenant a bearer token may act for (want is the
// tenant named in X-Scope-OrgID). *ruleset.Tenants implements it; it returns
// a *ruleset.AuthError for 401/403.
type Authenticator interface {
	Authorize(token, want string) (string, error)
}

// Limiter admits or rejects ingest per tenant. Over the limit a request is
// answered 429, or 503 to senders that retry only 5xx (overLimitStatus).
type Limiter interface {
	Allow(tenant string, n int) bool
}

// Config of the receiver.
type Config struct {
	MaxBodyBytes int64
	// Auth is nil when --auth is off.
	Auth Authenticator
	// Limiter is optional.
	Limiter Limiter
	SNS     SNSConfig
	// Ready reports readiness beyond the bus (e.g. rules loaded).
	Ready func(ctx context.Context) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RetryAfter is sent with 503 when storing fails.
	RetryAfter time.Duration
	// Known says why the rules cannot take what a request sends (nil: they
	// can): kind "tenant" for every request (the tenant has no rules), and
	// "heartbeat" or "slo" for the name in a POST to /api/v1/heartbeat/NAME
	// or /api/v1/slo/NAME/events. nil accepts everything. Refused requests
	// are answered 404 with the reason: stored, they were routed or counted
	// nowhere, and a cron job with a typo in its URL, or a sender with a
	// wrong X-Scope-OrgID, was told it had succeeded.
	Known func(tenant, kind, name string) error
}

// Receiver serves the ingest endpoints.
type Receiver struct {
	cfg     Config
	pub     Publisher
	log     *slog.Logger
	metrics *metrics
	sns     *snsVerifier
	commit  *groupCommit
}

// New builds a receiver publishing to pub.
func New(cfg Config, pub Publisher, log *slog.Logger, reg prometheus.Registerer) *Receiver {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	rc := &Receiver{
		cfg:     cfg,
		pub:     pub,
		log:     log,
		metrics: newMetrics(reg),
		sns:     newSNSVerifier(cfg.SNS, cfg.Now),
	}
	rc.commit = &groupCommit{
		publish: func(ctx context.Context, envs []*klaxonv1.Envelope) ([]bus.Result, []int, error) {
			return rc.publish(ctx, envs, true)
		},
		observe: func(n int) { rc.metrics.group.Observe(float64(n)) },
		queues:  map[string]*commitQueue{},
	}
	return rc
}

// Register adds the ingest routes to mux.
func (rc *Receiver) Register(mux *http.ServeMux) {
	rc.handle(mux, "POST /api/v1/alertmanager", "alertmanager", rc.alertmanager)
	rc.handle(mux, "POST /api/v2/alerts", "alerts_v2", rc.alertsV2)
	rc.handle(mux, "POST /api/v1/sns", "sns", rc.snsHandler)
	rc.handle(mux, "POST /api/v1/eventbridge", "eventbridge", rc.eventbridge)
	rc.handle(mux, "POST /api/v1/k8s-events", "k8s_events", rc.k8sEvents)
	rc.handle(mux, "POST /api/v1/heartbeat/{name}", "heartbeat", rc.heartbeat)
	rc.handle(mux, "POST /api/v1/slo/{name}/events", "slo_events", rc.sloEvents)
}

// request is what a source handler sees: the tenant and the body read.
type request struct {
	*http.Request
	tenant string
	body   []byte
	now    time.Time
}

// result of a source handler: envelopes to store, and optionally a custom
// success answer.
type result struct {
	envelopes []*klaxonv1.Envelope
	// batch: the envelopes are alerts, stored as batch messages, shared
	// with other small requests (groupCommit). Alerts are safe to batch:
	// an alert stored again (a retried request in another group, or the
	// same alert in another request) is merged by the engine and counted
	// once by policies. Events keep one message each, so
	// JetStream drops every repeated event, whatever request it came in.
	batch  bool
	status int // 0 means 200
	extra  map[string]any
}

type sourceFunc func(ctx context.Context, req *request) (*result, error)

// inputError is a client mistake: 400 with the message naming the field.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

func badInput(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}

// statusError carries a specific HTTP status (403 for SNS, ...), and for a
// status the sender should retry, optionally when.
type statusError struct {
	status     int
	msg        string
	retryAfter time.Duration
}

func (e *statusError) Error() string { return e.msg }

func (rc *Receiver) handle(mux *http.ServeMux, pattern, endpoint string, fn sourceFunc) {
	// Resolve the per-endpoint series once, not on every request.
	requests, err := rc.metrics.requests.CurryWith(prometheus.Labels{"endpoint": endpoint})
	if err != nil {
		panic(err)
	}
	duration := rc.metrics.duration.WithLabelValues(endpoint)
	ep := &endpointSeries{
		name:       endpoint,
		overLimit:  overLimitStatus(endpoint),
		bytes:      rc.metrics.bytes.WithLabelValues(endpoint),
		items:      rc.metrics.items.WithLabelValues(endpoint),
		duplicates: rc.metrics.duplicates.WithLabelValues(endpoint),
	}
	ok := requests.WithLabelValues("200")
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		code := rc.serve(w, r, ep, fn)
		if code == http.StatusOK {
			ok.Inc()
		} else {
			requests.WithLabelValues(strconv.Itoa(code)).Inc()
		}
		duration.Observe(time.Since(start).Seconds())
	})
}

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// ValidTenant reports whether s can name a tenant (it becomes a subject token
// and a directory name).
func ValidTenant(s string) bool { return tenantRE.MatchString(s) }

// endpointSeries is an endpoint's name and its counters, resolved once: a
// label lookup per counter per request showed in a storm's profile.
type endpointSeries struct {
	name                     string
	overLimit                int // status when the tenant is over its rate limit
	bytes, items, duplicates prometheus.Counter
}

// overLimitStatus is what an endpoint answers a tenant over its ingest rate
// limit: a status its sender retries, or the items are lost. 429 for senders
// that back off and come back by themselves (Prometheus re-sends active
// alerts every minute, EventBridge API destinations retry 429, cron jobs
// and apps are ours to write); 503 for those that retry only a 5xx: the
// Alertmanager webhook notifier (notify.Retrier takes any other status as
// final and gives up on the notification) and SNS (any status from 200 to
// 499 is, for SNS, a delivery: never retried).
func overLimitStatus(endpoint string) int {
	switch endpoint {
	case "alertmanager", "sns":
		return http.StatusServiceUnavailable
	}
	return http.StatusTooManyRequests
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request, ep *endpointSeries, fn sourceFunc) int {
	endpoint := ep.name
	tenant := r.Header.Get("X-Scope-OrgID")
	if tenant != "" && !ValidTenant(tenant) {
		return writeError(w, http.StatusBadRequest, "X-Scope-OrgID: tenant must match "+tenantRE.String())
	}
	if rc.cfg.Auth != nil {
		token := ruleset.BearerToken(r)
		if u, p, ok := r.BasicAuth(); ok && token == "" {
			// Senders that cannot set a bearer token (SNS subscriptions,
			// old webhooks) put tenant:token in the URL's user info.
			token = p
			if tenant == "" && ValidTenant(u) {
				tenant = u
			}
		}
		t, err := rc.cfg.Auth.Authorize(token, tenant)
		if err != nil {
			var ae *ruleset.AuthError
			if errors.As(err, &ae) {
				if ae.Status == http.StatusUnauthorized {
					w.Header().Set("WWW-Authenticate", `Bearer realm="klaxon"`)
				}
				return writeError(w, ae.Status, ae.Msg)
			}
			return writeError(w, http.StatusUnauthorized, err.Error())
		}
		tenant = t
	}
	if tenant == "" {
		tenant = DefaultTenant
	}
	if rc.cfg.Known != nil {
		if err := rc.cfg.Known(tenant, "tenant", ""); err != nil {
			return writeError(w, http.StatusNotFound, err.Error())
		}
	}
	if r.ContentLength > rc.cfg.MaxBodyBytes {
		return writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d bytes", r.ContentLength, rc.cfg.MaxBodyBytes))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rc.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", rc.cfg.MaxBodyBytes))
		}
		return writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
	}
	ep.bytes.Add(float64(len(body)))
	req := &request{Request: r, tenant: tenant, body: body, now: rc.cfg.Now()}
	res, err := fn(r.Context(), req)
	if err != nil {
		var ie *inputError
		var se *statusError
		switch {
		case errors.As(err, &ie):
			return writeError(w, http.StatusBadRequest, ie.msg)
		case errors.As(err, &se):
			if se.retryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(se.retryAfter.Seconds())))
			}
			return writeError(w, se.status, se.msg)
		default:
			rc.log.Error("ingest failed", "endpoint", endpoint, "tenant", tenant, "err", err)
			return writeError(w, http.StatusInternalServerError, err.Error())
		}
	}
	if n := len(res.envelopes); n > 0 && rc.cfg.Limiter != nil && !rc.cfg.Limiter.Allow(tenant, n) {
		w.Header().Set("Retry-After", "1")
		return writeError(w, ep.overLimit, "tenant "+tenant+" is over its ingest rate limit (ingest_per_second), retry later")
	}
	stored, dups, err := rc.store(r.Context(), res.envelopes, res.batch)
	if errors.Is(err, bus.ErrTooLarge) {
		// Not 503: a retry would fail the same way, for ever.
		return writeError(w, http.StatusRequestEntityTooLarge, "an item is larger than the largest message the NATS server takes (its max_payload) and was not stored; other items of this request may have been")
	}
	if err != nil {
		rc.log.Warn("cannot store; asking the sender to retry", "endpoint", endpoint, "tenant", tenant, "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(int(rc.cfg.RetryAfter.Seconds())))
		return writeError(w, http.StatusServiceUnavailable, "cannot store durably, retry later")
	}
	ep.items.Add(float64(stored))
	ep.duplicates.Add(float64(dups))
	status := res.status
	if status == 0 {
		status = http.StatusOK
	}
	if res.extra == nil {
		// The hot path: no map, no reflection.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		b := make([]byte, 0, 64)
		b = append(b, `{"status":"success","stored":`...)
		b = strconv.AppendInt(b, int64(stored), 10)
		b = append(b, `,"duplicates":`...)
		b = strconv.AppendInt(b, int64(dups), 10)
		_, _ = w.Write(append(b, "}\n"...))
		return status
	}
	out := map[string]any{"status": "success", "stored": stored, "duplicates": dups}
	for k, v := range res.extra {
		out[k] = v
	}
	writeJSON(w, status, out)
	return status
}

// store publishes the envelopes and waits for all acks: with batch, as
// batch messages (bus.IngestMessages), so a 256-alert request costs
// JetStream one write, not 256, and a small request shares its write with
// the requests that arrive while another publish is in flight (groupCommit);
// otherwise one message each.
func (rc *Receiver) store(ctx context.Context, envs []*klaxonv1.Envelope, batch bool) (stored, dups int, err error) {
	if len(envs) == 0 {
		return 0, 0, nil
	}
	size, small := 0, false
	if batch { // events are never coalesced: no need to size them
		size, small = coalescable(envs)
	}
	if small {
		// Not ctx: a request in a group is published with the others even
		// if its sender has gone (groupCommit.store).
		stored, dups, err = rc.commit.store(bus.IngestSubject(envs[0].Tenant, envs[0].Source), envs, size)
	} else {
		ctx, cancel := context.WithTimeout(ctx, publishTimeout)
		defer cancel()
		var res []bus.Result
		var counts []int
		res, counts, err = rc.publish(ctx, envs, batch)
		if err == nil {
			for i, r := range res {
				if r.Duplicate {
					dups += counts[i]
				}
			}
			stored = len(envs) - dups
		}
	}
	if err != nil {
		rc.metrics.ackError.Add(float64(len(envs)))
		return 0, 0, err
	}
	rc.metrics.ackOK.Add(float64(stored))
	rc.metrics.ackDuplicate.Add(float64(dups))
	return stored, dups, nil
}

// publish encodes envs for INGEST and stores them; counts[i] is how many
// envelopes message i (and so res[i]) holds.
func (rc *Receiver) publish(ctx context.Context, envs []*klaxonv1.Envelope, batch bool) (res []bus.Result, counts []int, err error) {
	msgs, counts, err := bus.IngestMessages(envs, batch)
	if err != nil {
		return nil, nil, err
	}
	start := time.Now()
	res, err = rc.pub.Publish(ctx, msgs...)
	rc.metrics.publish.Observe(time.Since(start).Seconds())
	return res, counts, err
}

// coalescable: envs are few enough bytes to share a batch message, and
// how many bytes they take in one.
func coalescable(envs []*klaxonv1.Envelope) (size int, ok bool) {
	for _, e := range envs {
		if size += bus.BatchSize(e); size > maxCoalesceBytes {
			return size, false
		}
	}
	return size, true
}

func newEnvelope(req *request, source, identity string) *klaxonv1.Envelope {
	return &klaxonv1.Envelope{
		Tenant:     req.tenant,
		Source:     source,
		ReceivedAt: timestamppb.New(req.now),
		Id:         EnvelopeID(req.tenant, source, identity),
	}
}

func writeError(w http.ResponseWriter, status int, msg string) int {
	writeJSON(w, status, map[string]string{"status": "error", "error": msg})
	return status
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
