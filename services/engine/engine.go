// Package engine turns ingested alerts into notifications: it consumes the
// INGEST stream, matches each alert against its tenant's Alertmanager route
// tree and publishes one notification per matched receiver on the NOTIFY
// stream. Grouping, inhibition, silences and policies grow here as stages
// between decode and publish.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// Engine routes alerts.
type Engine struct {
	bus     *bus.Bus
	rules   *ruleset.Holder
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	mu      sync.Mutex
	version uint64
	trees   map[string]*dispatch.Route
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock injects the clock.
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// New builds an engine.
func New(b *bus.Bus, rules *ruleset.Holder, log *slog.Logger, reg prometheus.Registerer, opts ...Option) *Engine {
	e := &Engine{bus: b, rules: rules, log: log, now: time.Now, metrics: newMetrics(reg), trees: map[string]*dispatch.Route{}}
	for _, o := range opts {
		o(e)
	}
	return e
}

type metrics struct {
	received  *prometheus.CounterVec
	unrouted  *prometheus.CounterVec
	published prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_engine_envelopes_total", Help: "Envelopes processed by the engine, by kind.",
		}, []string{"kind"}),
		unrouted: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_engine_unrouted_total", Help: "Alerts of tenants that have no route tree.",
		}, []string{"tenant"}),
		published: f.NewCounter(prometheus.CounterOpts{
			Name: "klaxon_engine_notifications_published_total", Help: "Notifications published to the NOTIFY stream.",
		}),
	}
}

// Run consumes the INGEST stream until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	cc, err := e.bus.Consume(ctx, bus.ConsumerConfig{
		Stream:        bus.StreamIngest,
		Durable:       "engine",
		Filters:       []string{bus.IngestFilter("*")},
		AckWait:       10 * time.Second,
		MaxAckPending: 4096,
	}, e.handle)
	if err != nil {
		return err
	}
	<-ctx.Done()
	cc.Stop()
	return nil
}

func (e *Engine) handle(ctx context.Context, msg jetstream.Msg) error {
	var env klaxonv1.Envelope
	if err := proto.Unmarshal(msg.Data(), &env); err != nil {
		return bus.Permanent(fmt.Errorf("decode envelope: %w", err))
	}
	return e.Process(ctx, &env)
}

// Process routes one envelope. It is idempotent: the notifications it
// publishes carry deterministic ids, so a redelivered envelope is deduplicated
// by JetStream.
func (e *Engine) Process(ctx context.Context, env *klaxonv1.Envelope) error {
	a := env.GetAlert()
	if a == nil {
		e.metrics.received.WithLabelValues("event").Inc()
		return nil
	}
	e.metrics.received.WithLabelValues("alert").Inc()
	tree := e.tree(env.Tenant)
	if tree == nil {
		e.metrics.unrouted.WithLabelValues(env.Tenant).Inc()
		e.log.Debug("no route tree for tenant; alert dropped", "tenant", env.Tenant)
		return nil
	}
	lset := labelSet(a.Labels)
	var msgs []bus.Message
	for _, r := range tree.Match(lset) {
		n := &klaxonv1.Notification{
			Tenant:      env.Tenant,
			Receiver:    r.RouteOpts.Receiver,
			GroupLabels: groupLabels(r, lset),
			Alerts:      []*klaxonv1.Alert{a},
			Status:      a.Status,
			CreatedAt:   timestamppb.New(e.now()),
		}
		n.GroupKey = groupKey(r, n.GroupLabels)
		n.IdempotencyKey = IdempotencyKey(n)
		data, err := proto.Marshal(n)
		if err != nil {
			return err
		}
		msgs = append(msgs, bus.Message{Subject: bus.NotifySubject(n.Tenant, n.Receiver), ID: n.IdempotencyKey, Data: data})
	}
	if len(msgs) == 0 {
		return nil
	}
	if _, err := e.bus.Publish(ctx, msgs...); err != nil {
		return err
	}
	e.metrics.published.Add(float64(len(msgs)))
	return nil
}

// tree returns the tenant's route tree, rebuilt after each rules reload.
func (e *Engine) tree(tenant string) *dispatch.Route {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v := e.rules.Version(); v != e.version {
		e.version = v
		e.trees = map[string]*dispatch.Route{}
	}
	if r, ok := e.trees[tenant]; ok {
		return r
	}
	t := e.rules.Tenant(tenant)
	var r *dispatch.Route
	if t != nil && t.Config != nil && t.Config.Route != nil {
		r = dispatch.NewRoute(t.Config.Route, nil)
	}
	e.trees[tenant] = r
	return r
}

func labelSet(m map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(m))
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}

func groupLabels(r *dispatch.Route, lset model.LabelSet) map[string]string {
	out := map[string]string{}
	for ln, lv := range lset {
		if _, ok := r.RouteOpts.GroupBy[ln]; ok || r.RouteOpts.GroupByAll {
			out[string(ln)] = string(lv)
		}
	}
	return out
}

// groupKey is Alertmanager's group key: the route key and the group labels.
func groupKey(r *dispatch.Route, gl map[string]string) string {
	return fmt.Sprintf("%s:%s", r.Key(), labelSet(gl).String())
}

// IdempotencyKey identifies (receiver, group key, alert set, status) so
// redelivery never sends the same notification twice.
func IdempotencyKey(n *klaxonv1.Notification) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00", n.Tenant, n.Receiver, n.GroupKey, n.Status)
	parts := make([]string, 0, len(n.Alerts))
	for _, a := range n.Alerts {
		parts = append(parts, a.Fingerprint+"|"+a.Status.String()+"|"+a.StartsAt.AsTime().UTC().Format(time.RFC3339Nano))
	}
	sort.Strings(parts)
	h.Write([]byte(strings.Join(parts, ",")))
	return hex.EncodeToString(h.Sum(nil)[:16])
}
