package policy

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// Source is the envelope source of derived policy alerts.
const Source = "policy"

// derivedSources are envelopes produced by Klaxon itself; policies never
// count them (a derived alert counting itself would loop).
var derivedSources = map[string]bool{Source: true, "deadman": true, "slo-burn": true}

// IsDerived reports whether an envelope source is one of Klaxon's own.
func IsDerived(source string) bool { return derivedSources[source] }

// Config of the evaluator.
type Config struct {
	// Now is the clock (injected in tests).
	Now func() time.Time
	// Tick is how often due resolutions are checked.
	Tick time.Duration
	// ExternalURL is the base of derived alerts' generatorURL.
	ExternalURL *url.URL
	// NoConsumer: Run only ticks; the caller feeds Process from a consumer
	// it shares with the other derived-alert components.
	NoConsumer bool
}

// Evaluator counts occurrences and emits derived alerts.
type Evaluator struct {
	cfg     Config
	bus     *bus.Bus
	kv      *bus.TTLBucket
	rules   *ruleset.Holder
	log     *slog.Logger
	metrics *metrics

	// The resolve schedule: one entry per firing key, moved in place
	// (heap.Fix) when its resolve time changes, so it is bounded by the
	// number of firing keys, not by the occurrences counted while they fire.
	mu  sync.Mutex
	due dueHeap
	at  map[string]*dueItem // kv key → its entry in due
}

type metrics struct {
	occurrences *prometheus.CounterVec
	derived     *prometheus.CounterVec
	conflicts   prometheus.Counter
}

// New builds an evaluator; Run starts it.
func New(ctx context.Context, cfg Config, b *bus.Bus, rules *ruleset.Holder, log *slog.Logger, reg prometheus.Registerer) (*Evaluator, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.ExternalURL == nil {
		cfg.ExternalURL = &url.URL{Scheme: "http", Host: "localhost:9095"}
	}
	kv, err := b.TTLKV(ctx, bus.BucketWindows)
	if err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	return &Evaluator{
		cfg: cfg, bus: b, kv: kv, rules: rules, log: log, at: map[string]*dueItem{},
		metrics: &metrics{
			occurrences: f.NewCounterVec(prometheus.CounterOpts{
				Name: "klaxon_policy_occurrences_total", Help: "Occurrences seen by window policies, by result (counted, duplicate, late).",
			}, []string{"result"}),
			derived: f.NewCounterVec(prometheus.CounterOpts{
				Name: "klaxon_policy_derived_alerts_total", Help: "Derived alerts published by window policies, by status.",
			}, []string{"status"}),
			conflicts: f.NewCounter(prometheus.CounterOpts{
				Name: "klaxon_policy_kv_conflicts_total", Help: "Concurrent updates of one window by two replicas (retried).",
			}),
		},
	}, nil
}

// Run consumes INGEST, watches the window bucket (to know which windows are
// firing, also those another replica updated, and to recover after a
// restart) and resolves windows when their count falls back.
func (e *Evaluator) Run(ctx context.Context) error {
	if err := e.Recover(ctx); err != nil {
		return err
	}
	w, err := e.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("watch windows: %w", err)
	}
	defer func() { _ = w.Stop() }()
	if !e.cfg.NoConsumer {
		cc, err := e.bus.ConsumeEnvelopes(ctx, bus.ConsumerConfig{Durable: "policy", MaxAckPending: 4096}, e.Process)
		if err != nil {
			return err
		}
		defer cc.Stop()
	}
	tick := time.NewTicker(e.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case entry := <-w.Updates():
			if entry != nil {
				e.observe(entry.Key(), entry.Value(), entry.Operation())
			}
		case <-tick.C:
			if err := e.Tick(ctx); err != nil {
				e.log.Warn("policy tick", "err", err)
			}
		}
	}
}

// Recover reads every window in the bucket and schedules the firing ones,
// so a restarted (or new) replica resolves them on time.
func (e *Evaluator) Recover(ctx context.Context) error {
	w, err := e.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch windows: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case entry := <-w.Updates():
			if entry == nil {
				return nil // initial values done
			}
			e.observe(entry.Key(), entry.Value(), entry.Operation())
		}
	}
}

// observe keeps the schedule of firing windows in step with the bucket.
func (e *Evaluator) observe(key string, value []byte, op jetstream.KeyValueOp) {
	if op != jetstream.KeyValuePut {
		e.unschedule(key)
		return
	}
	var r record
	if err := r.unmarshal(value); err != nil {
		return
	}
	if r.Pending != nil {
		// A derived alert not yet published: Tick publishes it (resolve)
		// unless the key is already due (its writer's retry, or its resolve).
		e.scheduleIfNot(key, e.cfg.Now())
		return
	}
	if r.FiringSince.IsZero() {
		e.unschedule(key)
		return
	}
	_, p := e.policyFor(key)
	if p == nil {
		return
	}
	e.schedule(key, r.ResolvesAt(p.Threshold, time.Duration(p.Window)))
}

// Process counts env against every policy of its tenant.
func (e *Evaluator) Process(ctx context.Context, env *klaxonv1.Envelope) error {
	if IsDerived(env.Source) {
		return nil
	}
	t := e.rules.Tenant(env.Tenant)
	if t == nil || len(t.Policies) == 0 {
		return nil
	}
	labels, occ, ok := occurrence(env)
	if !ok {
		return nil
	}
	now := e.cfg.Now()
	if occ.At.After(now) {
		occ.At = now // clock skew: never count in the future
	}
	var errs []error
	for i := range t.Policies {
		p := &t.Policies[i]
		if !p.Match.Matches(labels) {
			continue
		}
		if err := e.count(ctx, env.Tenant, p, labels, occ, now); err != nil {
			errs = append(errs, fmt.Errorf("policy %s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// occurrence extracts what to count: firing alerts by fingerprint+startsAt
// (re-sends of a firing alert carry the same pair), events by their id.
func occurrence(env *klaxonv1.Envelope) (map[string]string, Occurrence, bool) {
	if a := env.GetAlert(); a != nil {
		if a.Status != klaxonv1.AlertStatus_ALERT_STATUS_FIRING {
			return nil, Occurrence{}, false
		}
		at := a.StartsAt.AsTime()
		return a.Labels, Occurrence{At: at, ID: hash64("alert", a.Fingerprint, at.UTC().Format(time.RFC3339Nano))}, true
	}
	if ev := env.GetEvent(); ev != nil {
		labels := ev.Labels
		if ev.Name != "" {
			labels = copyWith(labels, "name", ev.Name)
		}
		labels = copyWith(labels, "kind", ev.Kind)
		return labels, Occurrence{At: ev.Time.AsTime(), ID: hash64("event", ev.Kind, ev.Id)}, true
	}
	return nil, Occurrence{}, false
}

func copyWith(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	if _, ok := out[k]; !ok {
		out[k] = v
	}
	return out
}

func (e *Evaluator) count(ctx context.Context, tenant string, p *ruleset.Policy, labels map[string]string, occ Occurrence, now time.Time) error {
	window := time.Duration(p.Window)
	lateness := time.Duration(p.Lateness)
	if lateness <= 0 {
		lateness = window
	}
	if !occ.At.After(now.Add(-lateness)) {
		e.metrics.occurrences.WithLabelValues("late").Inc()
		return nil
	}
	keyLabels := make(map[string]string, len(p.Key))
	for _, k := range p.Key {
		keyLabels[k] = labels[k]
	}
	kvKey := kvKey(tenant, p.Name, keyLabels)
	for attempt := 0; attempt < 10; attempt++ {
		raw, rev, err := e.kv.Read(ctx, kvKey)
		if err != nil {
			return err
		}
		var r record
		if raw != nil {
			if err := r.unmarshal(raw); err != nil {
				e.log.Warn("corrupt window state; starting over", "key", kvKey, "err", err)
				r = record{}
			}
		}
		r.Labels = keyLabels
		// A derived alert an earlier update decided but failed to publish
		// (typically for this very occurrence, now redelivered) goes first.
		pending := r.Pending
		if pending != nil {
			if err := e.publishRaw(ctx, pending); err != nil {
				return err
			}
			r.Pending = nil
		}
		if !r.Add(occ, p.Threshold) {
			e.metrics.occurrences.WithLabelValues("duplicate").Inc()
			if pending != nil {
				e.clearPending(ctx, kvKey, &r, rev, recordTTL(&r, window, now))
			}
			return nil
		}
		var publish *klaxonv1.Envelope
		if r.Above(now, p.Threshold, window) {
			if r.FiringSince.IsZero() {
				r.FiringSince = r.Last()
			}
			publish = e.derived(tenant, p, &r, now, true)
			if r.Pending, err = publish.MarshalVT(); err != nil {
				return err
			}
		}
		ttl := recordTTL(&r, window, now)
		rev, err = e.kv.Write(ctx, kvKey, r.marshal(), rev, ttl)
		if errors.Is(err, bus.ErrConflict) {
			e.metrics.conflicts.Inc()
			continue
		} else if err != nil {
			return err
		}
		e.metrics.occurrences.WithLabelValues("counted").Inc()
		if publish == nil {
			return nil
		}
		if err := e.publish(ctx, publish); err != nil {
			// Pending: published by the redelivery, the key's next update,
			// or the next Tick, whichever comes first.
			e.schedule(kvKey, now.Add(e.cfg.Tick))
			return err
		}
		e.schedule(kvKey, r.ResolvesAt(p.Threshold, window))
		e.clearPending(ctx, kvKey, &r, rev, ttl)
		return nil
	}
	return errors.New("too many concurrent updates")
}

// recordTTL: the key lives as long as its newest occurrence can matter, so
// idle keys expire by themselves after their window.
func recordTTL(r *record, window time.Duration, now time.Time) time.Duration {
	ttl := r.Last().Add(window).Sub(now)
	if ttl < time.Minute {
		ttl = time.Minute
	}
	return ttl + time.Hour
}

// clearPending writes r (its Pending published) back. Should that fail, the
// next update publishes Pending again: a JetStream duplicate.
func (e *Evaluator) clearPending(ctx context.Context, key string, r *record, rev uint64, ttl time.Duration) {
	r.Pending = nil
	if _, err := e.kv.Write(ctx, key, r.marshal(), rev, ttl); err != nil && !errors.Is(err, bus.ErrConflict) {
		e.log.Debug("window state not cleared after publishing", "key", key, "err", err)
	}
}

// Tick resolves firing windows whose count fell back to the threshold.
func (e *Evaluator) Tick(ctx context.Context) error {
	now := e.cfg.Now()
	var errs []error
	for _, key := range e.popDue(now) {
		if err := e.resolve(ctx, key, now); err != nil {
			errs = append(errs, err)
			e.schedule(key, now.Add(e.cfg.Tick)) // try again
		}
	}
	return errors.Join(errs...)
}

func (e *Evaluator) resolve(ctx context.Context, key string, now time.Time) error {
	tenant, p := e.policyFor(key)
	if p == nil {
		return nil // policy removed from the rules; its alert resolves by endsAt
	}
	window := time.Duration(p.Window)
	for attempt := 0; attempt < 10; attempt++ {
		raw, rev, err := e.kv.Read(ctx, key)
		if err != nil || raw == nil {
			return err
		}
		var r record
		if err := r.unmarshal(raw); err != nil {
			return nil
		}
		// A firing alert never published must be seen before its resolve; a
		// resolve whose publish failed is retried here.
		pending := r.Pending
		if pending != nil {
			if err := e.publishRaw(ctx, pending); err != nil {
				return err
			}
			r.Pending = nil
		}
		if r.FiringSince.IsZero() {
			if pending != nil {
				e.clearPending(ctx, key, &r, rev, window+time.Hour)
			}
			return nil
		}
		if r.Above(now, p.Threshold, window) {
			if pending != nil {
				e.clearPending(ctx, key, &r, rev, recordTTL(&r, window, now))
			}
			e.schedule(key, r.ResolvesAt(p.Threshold, window))
			return nil
		}
		env := e.derived(tenant, p, &r, now, false)
		r.FiringSince = time.Time{}
		if r.Pending, err = env.MarshalVT(); err != nil {
			return err
		}
		rev, err = e.kv.Write(ctx, key, r.marshal(), rev, window+time.Hour)
		if errors.Is(err, bus.ErrConflict) {
			e.metrics.conflicts.Inc()
			continue
		} else if err != nil {
			return err
		}
		if err := e.publish(ctx, env); err != nil {
			return err // Pending: Tick retries it
		}
		e.clearPending(ctx, key, &r, rev, window+time.Hour)
		return nil
	}
	return errors.New("too many concurrent updates")
}

// derived builds the derived alert of a window.
func (e *Evaluator) derived(tenant string, p *ruleset.Policy, r *record, now time.Time, firing bool) *klaxonv1.Envelope {
	window := time.Duration(p.Window)
	labels := map[string]string{}
	for k, v := range r.Labels {
		if v != "" {
			labels[k] = v
		}
	}
	for k, v := range p.Labels {
		labels[k] = v
	}
	labels["policy"] = p.Name
	resolvesAt := r.ResolvesAt(p.Threshold, window)
	count := r.CountIn(now, window)
	data := templateData{Labels: labels, Count: count, Threshold: p.Threshold, Window: model.Duration(window).String(),
		First: r.First().UTC().Format(time.RFC3339), Last: r.Last().UTC().Format(time.RFC3339), Policy: p.Name}
	ann := map[string]string{
		"policy":           p.Name,
		"count":            fmt.Sprint(count),
		"threshold":        fmt.Sprint(p.Threshold),
		"window":           data.Window,
		"first_occurrence": data.First,
		"last_occurrence":  data.Last,
		"summary":          fmt.Sprintf("more than %d occurrences in %s (policy %s)", p.Threshold, data.Window, p.Name),
	}
	for k, v := range p.Annotations {
		ann[k] = expand(v, data)
	}
	a := &klaxonv1.Alert{
		Labels:       labels,
		Annotations:  ann,
		StartsAt:     timestamppb.New(r.FiringSince),
		GeneratorUrl: e.cfg.ExternalURL.JoinPath("api/v1/policies", p.Name).String() + "?tenant=" + url.QueryEscape(tenant),
		Status:       klaxonv1.AlertStatus_ALERT_STATUS_FIRING,
		// While firing, endsAt says when it resolves unless new occurrences
		// come: should the resolve itself be lost, the engine still ends it.
		EndsAt: timestamppb.New(resolvesAt),
	}
	if !firing {
		a.Status = klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED
		end := resolvesAt
		if end.After(now) || end.IsZero() {
			end = now
		}
		a.EndsAt = timestamppb.New(end)
	}
	a.Fingerprint = model.LabelSet(toLabelSet(labels)).Fingerprint().String()
	id := hash64("derived", tenant, a.Fingerprint, a.Status.String(), a.StartsAt.AsTime().String(), a.EndsAt.AsTime().String())
	return &klaxonv1.Envelope{
		Tenant: tenant, Source: Source, ReceivedAt: timestamppb.New(now),
		Id:      fmt.Sprintf("%016x", id),
		Payload: &klaxonv1.Envelope_Alert{Alert: a},
	}
}

// publishRaw publishes a Pending envelope.
func (e *Evaluator) publishRaw(ctx context.Context, data []byte) error {
	var env klaxonv1.Envelope
	if err := env.UnmarshalVT(data); err != nil {
		e.log.Warn("dropping an undecodable pending policy alert", "err", err)
		return nil
	}
	return e.publish(ctx, &env)
}

func (e *Evaluator) publish(ctx context.Context, env *klaxonv1.Envelope) error {
	data, err := env.MarshalVT()
	if err != nil {
		return err
	}
	if _, err := e.bus.Publish(ctx, bus.Message{Subject: bus.IngestSubject(env.Tenant, env.Source), ID: env.Id, Data: data}); err != nil {
		return err
	}
	status := "firing"
	if env.GetAlert().Status == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED {
		status = "resolved"
	}
	e.metrics.derived.WithLabelValues(status).Inc()
	e.log.Debug("derived alert", "tenant", env.Tenant, "alert", env.GetAlert().Labels["alertname"], "status", status)
	return nil
}

func toLabelSet(m map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(m))
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}

// kvKey is <tenant>.<policy>.<hash of key labels>: KV keys allow only a
// small alphabet, label values do not.
func kvKey(tenant, policy string, keyLabels map[string]string) string {
	fp := model.LabelSet(toLabelSet(keyLabels)).Fingerprint()
	return bus.Token(tenant) + "." + bus.Token(policy) + "." + fp.String()
}

// policyFor finds the tenant and policy of a KV key in the current rules.
func (e *Evaluator) policyFor(key string) (string, *ruleset.Policy) {
	parts := strings.SplitN(key, ".", 3)
	if len(parts) != 3 {
		return "", nil
	}
	set := e.rules.Get()
	for name, t := range set.Tenants {
		if bus.Token(name) != parts[0] {
			continue
		}
		for i := range t.Policies {
			if bus.Token(t.Policies[i].Name) == parts[1] {
				return name, &t.Policies[i]
			}
		}
	}
	return "", nil
}

func hash64(parts ...string) uint64 {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return binary.BigEndian.Uint64(h.Sum(nil))
}

type templateData struct {
	Labels    map[string]string
	Count     int
	Threshold int
	Window    string
	First     string
	Last      string
	Policy    string
}

// expand renders a Prometheus-style annotation template ($labels, $value is
// the count). A broken template is kept verbatim rather than dropped.
func expand(text string, d templateData) string {
	if !strings.Contains(text, "{{") {
		return text
	}
	pre := "{{$labels := .Labels}}{{$value := .Count}}{{$count := .Count}}{{$threshold := .Threshold}}{{$window := .Window}}"
	tmpl, err := template.New("annotation").Option("missingkey=zero").Parse(pre + text)
	if err != nil {
		return text
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, d); err != nil {
		return text
	}
	return buf.String()
}

// ExpandCheck validates an annotation template (for rule linting).
func ExpandCheck(text string) error {
	pre := "{{$labels := .Labels}}{{$value := .Count}}{{$count := .Count}}{{$threshold := .Threshold}}{{$window := .Window}}"
	_, err := template.New("annotation").Parse(pre + text)
	return err
}

// schedule sets when key is due, moving its one entry if it has one.
func (e *Evaluator) schedule(key string, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if it, ok := e.at[key]; ok {
		if !it.at.Equal(at) {
			it.at = at
			heap.Fix(&e.due, it.index)
		}
		return
	}
	it := &dueItem{at: at, key: key}
	heap.Push(&e.due, it)
	e.at[key] = it
}

// scheduleIfNot schedules key at at unless it is scheduled already.
func (e *Evaluator) scheduleIfNot(key string, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.at[key]; ok {
		return
	}
	it := &dueItem{at: at, key: key}
	heap.Push(&e.due, it)
	e.at[key] = it
}

func (e *Evaluator) unschedule(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if it, ok := e.at[key]; ok {
		heap.Remove(&e.due, it.index)
		delete(e.at, key)
	}
}

func (e *Evaluator) popDue(now time.Time) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var keys []string
	for e.due.Len() > 0 && !e.due[0].at.After(now) {
		it := heap.Pop(&e.due).(*dueItem)
		delete(e.at, it.key)
		keys = append(keys, it.key)
	}
	return keys
}

// Scheduled returns how many firing windows wait for resolution.
func (e *Evaluator) Scheduled() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.at)
}

// dueItem is a key's entry in the schedule; index is its place in the heap
// (kept by Swap, Push and Pop) for heap.Fix and heap.Remove.
type dueItem struct {
	at    time.Time
	key   string
	index int
}

type dueHeap []*dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *dueHeap) Push(x any) {
	it := x.(*dueItem)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	it.index = -1
	*h = old[:len(old)-1]
	return it
}
