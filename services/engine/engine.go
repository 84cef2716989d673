// Package engine turns ingested alerts into notifications with
// Alertmanager's semantics: it consumes the INGEST stream, runs each alert
// through its tenant's route tree into aggregation groups (Dispatcher, the
// pure core), and publishes the notifications the groups decide on to the
// NOTIFY stream, deduplicated by their idempotency key. Group state lives in
// JetStream KV; one replica at a time is active, holding a KV lease (see
// README.md).
package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/engine/silence"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// Config tunes the engine; zero values take the defaults.
type Config struct {
	// LeaseTTL bounds failover: a dead leader's lease expires after it.
	LeaseTTL time.Duration
	// AckWait of the INGEST consumer: how soon a dead leader's unacknowledged
	// alerts are redelivered.
	AckWait time.Duration
	// MaxTick is the longest the engine sleeps between flush checks.
	MaxTick time.Duration
	// Owner names this replica in the lease (default: random).
	Owner string
}

// Defaults.
const (
	DefaultLeaseTTL = 6 * time.Second
	DefaultAckWait  = 10 * time.Second
	DefaultMaxTick  = time.Second
)

// Engine routes alerts.
type Engine struct {
	cfg      Config
	bus      *bus.Bus
	rules    *ruleset.Holder
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics
	silences *silence.Store
	limit    func(tenant string) int
	// cycle serialises the work on the dispatcher (a batch of alerts, a
	// timer's flush), so each commits what it changed before the next.
	cycle sync.Mutex
	// wake: a batch may have started groups that are due before the
	// timer fires, or decided notifications (toPublish, guarded by cycle).
	wake      chan struct{}
	toPublish []*klaxonv1.Notification
	// fullLogged is when an alert refused by a full group was last logged
	// (guarded by cycle).
	fullLogged time.Time
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock injects the clock.
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// WithConfig sets the engine's tuning.
func WithConfig(c Config) Option { return func(e *Engine) { e.cfg = c } }

// WithSilences shares a silence store (otherwise the engine opens its own
// over KV).
func WithSilences(s *silence.Store) Option { return func(e *Engine) { e.silences = s } }

// WithAlertLimit sets each tenant's max_active_alerts (0: unlimited).
func WithAlertLimit(limit func(tenant string) int) Option { return func(e *Engine) { e.limit = limit } }

// New builds an engine.
func New(b *bus.Bus, rules *ruleset.Holder, log *slog.Logger, reg prometheus.Registerer, opts ...Option) *Engine {
	e := &Engine{bus: b, rules: rules, log: log, now: time.Now, metrics: newMetrics(reg), wake: make(chan struct{}, 1)}
	for _, o := range opts {
		o(e)
	}
	if e.cfg.LeaseTTL <= 0 {
		e.cfg.LeaseTTL = DefaultLeaseTTL
	}
	if e.cfg.AckWait <= 0 {
		e.cfg.AckWait = DefaultAckWait
	}
	if e.cfg.MaxTick <= 0 {
		e.cfg.MaxTick = DefaultMaxTick
	}
	if e.cfg.Owner == "" {
		var r [8]byte
		_, _ = rand.Read(r[:])
		e.cfg.Owner = hex.EncodeToString(r[:])
	}
	return e
}

type metrics struct {
	// receivedAlert and receivedEvent are received's two series, resolved
	// once: every routed alert counts one.
	received                     *prometheus.CounterVec
	receivedAlert, receivedEvent prometheus.Counter
	unrouted                     *prometheus.CounterVec
	rejected                     *prometheus.CounterVec
	groupFull                    *prometheus.CounterVec
	published                    prometheus.Counter
	stale                        prometheus.Counter
	batch                        prometheus.Histogram
	leader                       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_engine_envelopes_total", Help: "Envelopes processed by the engine, by kind.",
		}, []string{"kind"}),
		unrouted: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_engine_unrouted_total", Help: "Alerts of tenants that have no route tree.",
		}, []string{"tenant"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_engine_alerts_rejected_total", Help: "New alerts not taken in because the tenant holds max_active_alerts alerts.",
		}, []string{"tenant"}),
		groupFull: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_engine_alerts_refused_group_full_total", Help: "Alerts not taken into a group because its alerts already take what one stored group can hold (see README: Limits).",
		}, []string{"tenant"}),
		stale: f.NewCounter(prometheus.CounterOpts{
			Name: "klaxon_engine_stale_alerts_total", Help: "Alerts refused because they came in a redelivered message older than the alert's state.",
		}),
		published: f.NewCounter(prometheus.CounterOpts{
			Name: "klaxon_engine_notifications_published_total", Help: "Notifications published to the NOTIFY stream.",
		}),
		batch: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "klaxon_engine_batch_envelopes",
			Help:    "Envelopes taken in by one group commit of the engine (what had arrived: one when idle, more under load).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
		leader: f.NewGauge(prometheus.GaugeOpts{
			Name: "klaxon_engine_leader", Help: "1 while this replica holds the engine lease and dispatches.",
		}),
	}
	m.receivedAlert = m.received.WithLabelValues("alert")
	m.receivedEvent = m.received.WithLabelValues("event")
	return m
}

// Run waits for the engine lease, then dispatches until ctx ends or the
// lease is lost (then it waits for the lease again).
func (e *Engine) Run(ctx context.Context) error {
	kv, err := e.bus.TTLKV(ctx, bus.BucketGroups)
	if err != nil {
		return fmt.Errorf("groups bucket: %w", err)
	}
	if e.silences == nil {
		if e.silences, err = silence.NewKV(ctx, e.bus, silence.WithClock(e.now)); err != nil {
			return err
		}
	}
	if err := e.silences.Load(ctx); err != nil {
		return fmt.Errorf("load silences: %w", err)
	}
	l := &lease{kv: kv, js: e.bus.JS, owner: e.cfg.Owner, ttl: e.cfg.LeaseTTL}
	poll := time.NewTicker(e.cfg.LeaseTTL / 6)
	defer poll.Stop()
	for {
		ok, err := l.tryAcquire(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("engine lease", "err", err)
		}
		if ok {
			e.log.Info("engine lease acquired; dispatching", "owner", e.cfg.Owner)
			e.metrics.leader.Set(1)
			err := e.lead(ctx, l)
			e.metrics.leader.Set(0)
			if ctx.Err() != nil {
				rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				l.release(rctx)
				cancel()
				return nil
			}
			e.log.Warn("engine lease lost; standing by", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
		}
	}
}

// lead dispatches while this replica holds the lease.
func (e *Engine) lead(ctx context.Context, l *lease) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	store, err := NewKVStore(ctx, e.bus)
	if err != nil {
		return err
	}
	store.MaxValueBytes, store.Log = maxValueBytes(e.bus.NC.MaxPayload()), e.log
	d := NewDispatcher(DispatcherConfig{Rules: e.rules.Tenant, Store: store, Silences: e.silences, MaxActiveAlerts: e.limit,
		MaxGroupBytes: maxGroupBytes(e.bus.NC.MaxPayload()), SkipSilentReceivers: true, Log: e.log})
	// Groups the rules no longer take are regrouped, and written, by the
	// first tick (at once) or batch.
	if err := d.Load(ctx); err != nil {
		return err
	}
	cc, err := e.bus.ConsumeEnvelopeBatches(ctx, bus.ConsumerConfig{
		Durable: "engine", AckWait: e.cfg.AckWait, MaxAckPending: 4096,
		Linger: stormLinger, LingerFrom: stormBatch,
	}, maxBatch, func(ctx context.Context, envs []*klaxonv1.Envelope, seqs []uint64) error {
		if !l.valid() {
			return bus.RetryAfter(errors.New("engine lease not held"), e.cfg.LeaseTTL)
		}
		err := e.ProcessBatch(ctx, d, envs, seqs)
		if errors.Is(err, ErrLostOwnership) {
			cancel(err)
		}
		return err
	})
	if err != nil {
		return err
	}
	defer cc.Stop()
	renew := time.NewTicker(e.cfg.LeaseTTL / 3)
	defer renew.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	deadline := e.now()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-renew.C:
			ok, err := l.renew(ctx)
			if !ok {
				return fmt.Errorf("renew lease: %w", errors.Join(err, errors.New("lease taken or expired")))
			}
			continue
		case <-e.wake:
			e.cycle.Lock()
			ns := e.toPublish
			e.toPublish = nil
			err := e.publishAndAck(ctx, d, ns)
			e.cycle.Unlock()
			if errors.Is(err, ErrLostOwnership) {
				return err
			}
			if err != nil {
				e.log.Warn("publishing notifications failed; retrying", "err", err)
			}
			// The batch (which flushed what was due) may have started a
			// group that is due before the timer fires.
			if next, ok := d.NextDue(); ok && next.Before(deadline) {
				deadline = next
				timer.Reset(max(next.Sub(e.now()), time.Millisecond))
			}
			continue
		case <-timer.C:
		}
		if !l.valid() {
			return errors.New("lease not renewed in time")
		}
		e.cycle.Lock()
		err := e.tick(ctx, d)
		e.cycle.Unlock()
		if err != nil {
			if errors.Is(err, ErrLostOwnership) {
				return err
			}
			e.log.Warn("flush failed; retrying", "err", err)
		}
		wait := e.cfg.MaxTick
		if next, ok := d.NextDue(); ok {
			if w := next.Sub(e.now()); w < wait {
				wait = max(w, time.Millisecond)
			}
		}
		deadline = e.now().Add(wait)
		timer.Reset(wait)
	}
}

// maxValueBytes is the largest group value a KV write can carry: the
// largest message the server takes (max_payload), less room for the
// write's headers.
func maxValueBytes(maxPayload int64) int { return int(maxPayload) - 1024 }

// maxGroupBytes is DispatcherConfig.MaxGroupBytes under max_payload: a
// group's value holds its alerts and, while one is pending, its
// notification, which holds them again (protobuf, base64 in the JSON: about
// as large), and the notification alone is one NOTIFY message; a third of
// the largest message leaves room for both and for the notification log.
// Embedded JetStream takes 8 MiB (about 7,000 alerts of five labels and an
// annotation in one group), a NATS server's default 1 MiB (about 900).
func maxGroupBytes(maxPayload int64) int { return int(maxPayload / 3) }

// maxBatch bounds the alerts the engine takes in per group commit: large
// enough to amortise the commit's round trip, small enough that a commit
// (one KV write per touched group) does not hold up the lease's renewal
// on the same stream.
const maxBatch = 2048

// stormBatch and stormLinger: after a batch of stormBatch alerts or more,
// the engine waits up to stormLinger for the next batch to fill. In a storm
// of distinct alerts (32 connections posting one alert each, ≈10k/s on two
// cores) batches were 16-64 alerts, and a commit's KV writes, one per new
// group, were pipelined only that deep: embedded JetStream took 24.5 µs per
// 770-byte KV write 64 in flight, 14.6 µs 1,024 in flight. Waiting, the
// engine used 11% less CPU per alert in that storm (three alternating
// pairs against Alertmanager in the same runs). At 1,000 alerts/s a batch
// is one or two alerts and never waits; a storm's routing waits at most
// 5 ms more.
const (
	stormBatch  = 32
	stormLinger = 5 * time.Millisecond
)

// tick flushes due groups, stores what they decided, publishes their
// notifications (and any earlier ones not yet published) and then stores
// that they were published. Callers hold e.cycle.
func (e *Engine) tick(ctx context.Context, d *Dispatcher) error {
	ns, err := d.Tick(ctx, e.now())
	// A notification is stored as pending before it is published, so after a
	// crash the same one (same idempotency key) is published again.
	if cerr := d.Commit(ctx); cerr != nil {
		return errors.Join(err, cerr)
	}
	return errors.Join(err, e.publishAndAck(ctx, d, ns))
}

// publishAndAck publishes notifications stored as pending, then marks that
// they were published. On an error they stay pending, and the next tick
// publishes them again. Callers hold e.cycle.
//
// The groups Ack changes are written by the next Commit (the next batch's,
// or the next tick's, within MaxTick), not by one of their own: a commit
// here held the next batch up for a round trip, which showed in the
// latency of every notification after it. A crash before that commit
// republishes the notifications at the next start, under the same
// idempotency keys: the NOTIFY stream drops them as duplicates within its
// window, and the notifier's log after it. (Leaving the marks to the
// groups' next writes saved a KV write per notification, but then every
// stop republished a group_interval's notifications, past NOTIFY's window
// where group_interval is longer, and the notifier's log does not stop a
// dead-lettered one: not kept.)
//
// Each notification published is acknowledged, even if others were not: one
// that cannot be published (larger than max_payload, say) then holds up only
// its own group, not every group's next flush.
func (e *Engine) publishAndAck(ctx context.Context, d *Dispatcher, ns []*klaxonv1.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	published, err := e.publish(ctx, ns)
	if len(published) > 0 {
		err = errors.Join(err, d.Ack(ctx, published...))
	}
	return err
}

// ProcessBatch takes in a batch of envelopes, flushes the groups that are
// due now (a group_wait of 0 flushes at once), and stores every group it
// changed, with the notifications decided as pending, in one group commit:
// after it returns nil the envelopes may be acknowledged. The lead loop
// publishes the notifications.
func (e *Engine) ProcessBatch(ctx context.Context, d *Dispatcher, envs []*klaxonv1.Envelope, seqs []uint64) error {
	e.cycle.Lock()
	defer e.cycle.Unlock()
	e.metrics.batch.Observe(float64(len(envs)))
	defer func() {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}()
	for i, env := range envs {
		if err := e.Process(ctx, d, env, seqs[i]); err != nil {
			return err
		}
	}
	ns, terr := d.Tick(ctx, e.now())
	if err := d.Commit(ctx); err != nil {
		return err
	}
	if terr != nil {
		e.log.Warn("flush failed; retrying", "err", terr)
	}
	// Published by the lead loop, woken as this returns, while the batch is
	// acknowledged: not publishing first keeps short the window in which a
	// crash redelivers alerts already routed (a redelivered firing alert
	// arriving after its own resolution would fire anew). Tick returns every
	// pending notification, so the latest list replaces any earlier one not
	// yet published.
	e.toPublish = ns
	return nil
}

// publish publishes ns to NOTIFY and returns those stored.
func (e *Engine) publish(ctx context.Context, ns []*klaxonv1.Notification) ([]*klaxonv1.Notification, error) {
	msgs := make([]bus.Message, 0, len(ns))
	for _, n := range ns {
		data, err := n.MarshalVT()
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, bus.Message{Subject: bus.NotifySubject(n.Tenant, n.Receiver), ID: n.IdempotencyKey, Data: data, Shard: bus.NotificationShard(n)})
	}
	res, err := e.bus.Publish(ctx, msgs...)
	published := make([]*klaxonv1.Notification, 0, len(res))
	for i, r := range res {
		if !r.Stored {
			continue
		}
		published = append(published, ns[i])
		if !r.Duplicate {
			e.metrics.published.Inc()
		}
	}
	return published, err
}

// Process puts one envelope's alert into the dispatcher; the change is
// stored by the dispatcher's next Commit.
func (e *Engine) Process(ctx context.Context, d *Dispatcher, env *klaxonv1.Envelope, seq uint64) error {
	a := env.GetAlert()
	if a == nil {
		e.metrics.receivedEvent.Inc()
		return nil
	}
	e.metrics.receivedAlert.Inc()
	if t := e.rules.Tenant(env.Tenant); t == nil || t.Config == nil {
		e.metrics.unrouted.WithLabelValues(env.Tenant).Inc()
		e.log.Debug("no route tree for tenant; alert dropped", "tenant", env.Tenant)
		return nil
	}
	at := e.now()
	o := Origin{Seq: seq, Source: env.GetSource()}
	if env.GetReceivedAt() != nil {
		o.ReceivedAt = env.GetReceivedAt().AsTime()
	}
	if err := d.ReceiveFrom(ctx, env.Tenant, a, o, at); err != nil {
		if errors.Is(err, ErrStale) {
			e.metrics.stale.Inc()
			// Debug, not Info: a redelivered batch can hold thousands; the
			// counter is what to watch.
			e.log.Debug("stale alert refused (a redelivered message older than the alert's state)", "tenant", env.Tenant, "err", err)
			return nil
		}
		if errors.Is(err, ErrGroupFull) {
			// The alert is in its other groups, if any, and stays in
			// INGEST; the counter is what to alert on, the log says which
			// group, at most every 10 s.
			e.metrics.groupFull.WithLabelValues(env.Tenant).Inc()
			if now := e.now(); now.Sub(e.fullLogged) >= 10*time.Second {
				e.fullLogged = now
				e.log.Warn("alert refused by a full group (klaxon_engine_alerts_refused_group_full_total counts them; logged at most every 10 s)", "tenant", env.Tenant, "err", err)
			}
			return nil
		}
		if errors.Is(err, ErrTooManyAlerts) {
			// As Mimir's Alertmanager does: over the limit, new alerts are
			// refused (and counted, for an alert on Klaxon itself), alerts
			// already held keep updating and resolving.
			e.metrics.rejected.WithLabelValues(env.Tenant).Inc()
			e.log.Warn("alert rejected", "tenant", env.Tenant, "err", err)
			return nil
		}
		return err
	}
	return nil
}

// IdempotencyKey identifies (receiver, group key, alert set, status, flush
// time) so redelivery never sends the same notification twice while a
// repeat_interval re-send of an unchanged group is a new notification.
func IdempotencyKey(n *klaxonv1.Notification) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%d\x00", n.Tenant, n.Receiver, n.GroupKey, n.Status, n.GetCreatedAt().AsTime().UnixNano())
	parts := make([]string, 0, len(n.Alerts))
	for _, a := range n.Alerts {
		parts = append(parts, a.Fingerprint+"|"+a.Status.String()+"|"+a.StartsAt.AsTime().UTC().Format(time.RFC3339Nano))
	}
	sort.Strings(parts)
	h.Write([]byte(strings.Join(parts, ",")))
	return hex.EncodeToString(h.Sum(nil)[:16])
}
