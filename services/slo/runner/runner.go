// Package runner runs the SLOs of the rule files against the bus: it counts
// bad minutes and good/total events from INGEST into counters kept in
// JetStream KV, evaluates the multiwindow burn-rate rules on a tick,
// publishes SLOBurnRate derived alerts back into INGEST (so they are routed,
// silenced and inhibited like any alert), exports budget metrics and serves
// status and reports. The arithmetic lives in the pure parent package slo.
package runner

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/ruleset"
	"github.com/klaxon-sh/klaxon/services/slo"
)

// Source is the envelope source of SLO burn-rate alerts.
const Source = "slo-burn"

// sourceAlertmanager is the envelope source of alerts an upstream
// Alertmanager sent by webhook (receiver.SourceAlertmanager; not imported,
// as in the engine: the runner does not depend on the HTTP receiver).
const sourceAlertmanager = "alertmanager"

// keyTTL keeps an SLO's counters a little longer than the longest report.
const keyTTL = 400 * 24 * time.Hour

// Config of the runner.
type Config struct {
	Now         func() time.Time
	Tick        time.Duration
	ExternalURL *url.URL
	// NoConsumer: Run only ticks; the caller feeds Process from a consumer
	// it shares with the other derived-alert components.
	NoConsumer bool
}

// Runner evaluates SLOs.
type Runner struct {
	cfg     Config
	bus     *bus.Bus
	kv      *bus.TTLBucket
	rules   *ruleset.Holder
	log     *slog.Logger
	metrics *metrics

	mu    sync.Mutex
	specs map[string]*slo.Spec // cache per rules version: tenant\x00name
	ver   uint64
	// newerWarned is when warnNewer last logged, per SLO key (log
	// throttling only; the state is in KV).
	newerWarned map[string]time.Time
}

type metrics struct {
	remaining *prometheus.GaugeVec
	burn      *prometheus.GaugeVec
	derived   *prometheus.CounterVec
	events    *prometheus.CounterVec
	forgotten *prometheus.CounterVec
	newer     *prometheus.CounterVec
}

// New builds a runner. Several replicas may run: every change is a
// revision-checked KV write, and only the writer that wins publishes.
func New(ctx context.Context, cfg Config, b *bus.Bus, rules *ruleset.Holder, log *slog.Logger, reg prometheus.Registerer) (*Runner, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 15 * time.Second
	}
	if cfg.ExternalURL == nil {
		cfg.ExternalURL = &url.URL{Scheme: "http", Host: "localhost:9095"}
	}
	kv, err := b.TTLKV(ctx, bus.BucketSLO)
	if err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	return &Runner{cfg: cfg, bus: b, kv: kv, rules: rules, log: log, specs: map[string]*slo.Spec{},
		metrics: &metrics{
			remaining: f.NewGaugeVec(prometheus.GaugeOpts{
				Name: "klaxon_slo_error_budget_remaining_ratio", Help: "Error budget left over the period (1 = untouched, < 0 overspent).",
			}, []string{"tenant", "slo", "period"}),
			burn: f.NewGaugeVec(prometheus.GaugeOpts{
				Name: "klaxon_slo_burn_rate", Help: "Burn rate (error ratio ÷ budget) over a window.",
			}, []string{"tenant", "slo", "window"}),
			derived: f.NewCounterVec(prometheus.CounterOpts{
				Name: "klaxon_slo_derived_alerts_total", Help: "SLOBurnRate alerts published, by severity and status.",
			}, []string{"severity", "status"}),
			events: f.NewCounterVec(prometheus.CounterOpts{
				Name: "klaxon_slo_events_total", Help: "Alerts and events counted into SLOs, by kind.",
			}, []string{"kind"}),
			forgotten: f.NewCounterVec(prometheus.CounterOpts{
				Name: "klaxon_slo_dedup_ids_forgotten_total",
				Help: "Counted event ids forgotten before the 10-minute dedup window because an SLO held 4096 ids: a redelivery of one would count again.",
			}, []string{"tenant", "slo"}),
			newer: f.NewCounterVec(prometheus.CounterOpts{
				Name: "klaxon_slo_newer_state_total",
				Help: "SLO counts and ticks skipped because the SLO's stored state is in a newer Klaxon's format (left as it is).",
			}, []string{"tenant", "slo"}),
		}}, nil
}

// record is one SLO's KV value: its counters, which burn rules fire, and the
// ids of the latest maxSeenIDs events counted (a redelivered count is not
// added twice).
type record struct {
	counters slo.Counters
	firing   map[int]time.Time
	recent   []seenID // oldest first
	// pending are burn alerts (Envelopes) decided with this state and not
	// yet known to be published: written with the state, published, then
	// cleared; whoever updates the record next publishes them first (their
	// ids make a second copy a duplicate). Without them, a publish that
	// failed after the state was written lost the alert: a resolve was never
	// sent (the state said resolved), a first page waited for the next tick.
	pending [][]byte
}

// maxPending bounds the pending alerts of a record: one per burn rule.
const maxPending = ruleset.MaxBurnRates

// seenID is a counted event's id and when it was counted (unix seconds).
type seenID struct {
	id uint64
	at int64
}

const (
	// dedupWindow is the redelivery horizon the id bound is sized for and
	// klaxon_slo_dedup_ids_forgotten_total watches: JetStream's duplicate
	// window. A message is redelivered 1–10 s after a component of the
	// derived consumer failed or an ack was lost; remembering only the
	// latest 256 ids let an SLO of more than 25 events/s count such a
	// redelivery twice. Ids are not forgotten by age: after an engine crash
	// between the count and its ack, the event is redelivered when the
	// engine is back, however long that took.
	dedupWindow = 10 * time.Minute
	// maxSeenIDs bounds the ids per SLO, as the record is read and written
	// back on every count: 4096 ids are about 36 KiB stored, and cover the
	// whole window up to 6.8 events/s, and the 10 s ack wait (the longest
	// redelivery delay) up to 400 events/s. Each id costs on every count: a
	// full list took a count from 0.24 to 0.45 ms (16384 ids: 0.78 ms).
	// Ids younger than dedupWindow pushed out by the bound are counted in
	// klaxon_slo_dedup_ids_forgotten_total.
	maxSeenIDs = 4096
	// legacyIDs is the bound of the id list stored before ids had times.
	legacyIDs = 256
	// timedIDs marks the id list with times: more than legacyIDs, so never
	// the length of a legacy list.
	timedIDs = 1 << 20
)

// seen reports whether id is among the latest maxSeenIDs counted, and
// remembers it otherwise; forgotten is how many ids younger than
// dedupWindow the bound pushed out.
func (r *record) seen(id uint64, now time.Time) (dup bool, forgotten int) {
	for _, x := range r.recent {
		if x.id == id {
			return true, 0
		}
	}
	r.recent = append(r.recent, seenID{id: id, at: now.Unix()})
	if n := len(r.recent) - maxSeenIDs; n > 0 {
		cut := now.Add(-dedupWindow).Unix()
		for _, x := range r.recent[:n] {
			if x.at >= cut {
				forgotten++
			}
		}
		r.recent = r.recent[n:]
	}
	return false, forgotten
}

func (r *record) marshal() []byte {
	cb, _ := r.counters.MarshalBinary()
	buf := binary.AppendUvarint(nil, uint64(len(cb)))
	buf = append(buf, cb...)
	rules := make([]int, 0, len(r.firing))
	for i := range r.firing {
		rules = append(rules, i)
	}
	sort.Ints(rules)
	buf = binary.AppendUvarint(buf, uint64(len(rules)))
	for _, i := range rules {
		buf = binary.AppendUvarint(buf, uint64(i))
		buf = binary.AppendVarint(buf, r.firing[i].UnixNano())
	}
	buf = binary.AppendUvarint(buf, timedIDs)
	buf = binary.AppendUvarint(buf, uint64(len(r.recent)))
	var prev int64
	for _, x := range r.recent {
		buf = binary.LittleEndian.AppendUint64(buf, x.id)
		buf = binary.AppendVarint(buf, x.at-prev) // seconds apart: mostly one byte
		prev = x.at
	}
	if len(r.pending) > 0 { // a trailing section, absent when empty
		buf = binary.AppendUvarint(buf, uint64(len(r.pending)))
		for _, p := range r.pending {
			buf = binary.AppendUvarint(buf, uint64(len(p)))
			buf = append(buf, p...)
		}
	}
	return buf
}

var errCorrupt = errors.New("slo record: corrupt")

// errNewer is a record in a format of a newer Klaxon (a rollback, or a
// rolling upgrade with this replica not yet upgraded): counting here would
// overwrite it with what this binary can read, so the record stays and this
// replica skips its counts and ticks. Skipped, not failed: the derived
// consumer feeds policies and heartbeats too, and a message failed until a
// replica can read the record held all of them up (for ever after a
// rollback) once its pending limit filled.
var errNewer = errors.New("slo record: written by a newer Klaxon; not counted by this one")

// unmarshal restores what marshal wrote (and records written before ids had
// times: those ids count as seen at loaded).
func (r *record) unmarshal(b []byte, loaded time.Time) error {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return errCorrupt
	}
	if err := r.counters.UnmarshalBinary(b[k : k+int(n)]); err != nil {
		if errors.Is(err, slo.ErrNewerFormat) {
			return errNewer
		}
		return err
	}
	b = b[k+int(n):]
	cnt, k := binary.Uvarint(b)
	if k <= 0 || cnt > ruleset.MaxBurnRates {
		return errCorrupt
	}
	b = b[k:]
	r.firing = map[int]time.Time{}
	for i := uint64(0); i < cnt; i++ {
		idx, k1 := binary.Uvarint(b)
		if k1 <= 0 {
			return errCorrupt
		}
		b = b[k1:]
		ts, k2 := binary.Varint(b)
		if k2 <= 0 {
			return errCorrupt
		}
		b = b[k2:]
		r.firing[int(idx)] = time.Unix(0, ts).UTC()
	}
	if len(b) == 0 {
		return nil // written before ids were remembered
	}
	n, k = binary.Uvarint(b)
	if k <= 0 {
		return errCorrupt
	}
	b = b[k:]
	if n > timedIDs && n <= timedIDs+8 {
		// A marker of a later format (each new one the next number).
		return errNewer
	}
	if n != timedIDs {
		// Written before ids had times: n ids.
		if n > legacyIDs || uint64(len(b)) != n*8 {
			return errCorrupt
		}
		r.recent = make([]seenID, n)
		for i := range r.recent {
			r.recent[i] = seenID{id: binary.LittleEndian.Uint64(b[i*8:]), at: loaded.Unix()}
		}
		return nil
	}
	n, k = binary.Uvarint(b)
	// More than maxSeenIDs (a bound this binary does not share, e.g. a
	// build that kept more) keeps the latest; each id takes 9 bytes or more.
	if k <= 0 || n > uint64(len(b))/9 {
		return errCorrupt
	}
	b = b[k:]
	r.recent = make([]seenID, n)
	var at int64
	for i := range r.recent {
		if len(b) < 8 {
			return errCorrupt
		}
		id := binary.LittleEndian.Uint64(b)
		d, k := binary.Varint(b[8:])
		if k <= 0 {
			return errCorrupt
		}
		b = b[8+k:]
		at += d
		r.recent[i] = seenID{id: id, at: at}
	}
	if len(r.recent) > maxSeenIDs {
		r.recent = r.recent[len(r.recent)-maxSeenIDs:]
	}
	if len(b) == 0 {
		return nil // nothing pending
	}
	n, k = binary.Uvarint(b)
	if k <= 0 || n == 0 || n > maxPending {
		return errCorrupt
	}
	b = b[k:]
	r.pending = make([][]byte, n)
	for i := range r.pending {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return errCorrupt
		}
		r.pending[i] = b[k : k+int(l)]
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return errCorrupt
	}
	return nil
}

// envelopeID hashes the envelope's id (0 when it has none).
func envelopeID(env *klaxonv1.Envelope) uint64 {
	if env.Id == "" {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(env.Id))
	return h.Sum64()
}

func key(tenant, name string) string { return bus.Token(tenant) + "." + bus.Token(name) }

// Spec converts a rule-file SLO into the pure model (cached per reload).
func (r *Runner) Spec(tenant string, s *ruleset.SLO) (*slo.Spec, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v := r.rules.Version(); v != r.ver {
		r.ver, r.specs = v, map[string]*slo.Spec{}
	}
	k := tenant + "\x00" + s.Name
	if sp, ok := r.specs[k]; ok {
		return sp, nil
	}
	sp, err := SpecOf(s)
	if err != nil {
		return nil, err
	}
	r.specs[k] = sp
	return sp, nil
}

// SpecOf converts a rule-file SLO into the pure model.
func SpecOf(s *ruleset.SLO) (*slo.Spec, error) {
	obj, err := slo.ParseObjective(s.Objective)
	if err != nil {
		return nil, fmt.Errorf("slo %s: %w", s.Name, err)
	}
	sp := &slo.Spec{Name: s.Name, Objective: obj, Period: time.Duration(s.Period), MinEvents: s.MinEvents, Kind: slo.TimeSlice}
	if s.Events != nil {
		sp.Kind = slo.Ratio
	}
	if s.TimeZone != "" {
		if sp.Location, err = time.LoadLocation(s.TimeZone); err != nil {
			return nil, fmt.Errorf("slo %s: %w", s.Name, err)
		}
	}
	for _, br := range s.BurnRates {
		f, err := slo.ParseFactor(br.Factor)
		if err != nil {
			return nil, fmt.Errorf("slo %s: %w", s.Name, err)
		}
		sp.Rules = append(sp.Rules, slo.BurnRule{Severity: br.Severity, Factor: f, Long: time.Duration(br.LongWindow), Short: time.Duration(br.ShortWindow)})
	}
	if err := sp.Validate(); err != nil {
		return nil, fmt.Errorf("slo %s: %w", s.Name, err)
	}
	return sp, nil
}

// Run consumes INGEST and evaluates every tick until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	if !r.cfg.NoConsumer {
		cc, err := r.bus.ConsumeEnvelopes(ctx, bus.ConsumerConfig{Durable: "slo", MaxAckPending: 1024}, r.Process)
		if err != nil {
			return err
		}
		defer cc.Stop()
	}
	t := time.NewTicker(r.cfg.Tick)
	defer t.Stop()
	for {
		if err := r.Tick(ctx); err != nil {
			r.log.Warn("slo evaluation", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Process counts env into every SLO of its tenant it belongs to.
func (r *Runner) Process(ctx context.Context, env *klaxonv1.Envelope) error {
	if env.Source == Source {
		return nil // our own burn alerts never count
	}
	t := r.rules.Tenant(env.Tenant)
	if t == nil || len(t.SLOs) == 0 {
		return nil
	}
	var errs []error
	for i := range t.SLOs {
		s := &t.SLOs[i]
		apply, kind := change(s, env, t.ResolveTimeout())
		if apply == nil {
			continue
		}
		r.metrics.events.WithLabelValues(kind).Inc()
		id := envelopeID(env)
		if err := r.update(ctx, env.Tenant, s, func(rec *record, _ *slo.Spec, now time.Time) []*klaxonv1.Envelope {
			if id != 0 && kind != "alert_firing" && kind != "alert_resolved" {
				dup, forgotten := rec.seen(id, now)
				if forgotten > 0 {
					r.metrics.forgotten.WithLabelValues(env.Tenant, s.Name).Add(float64(forgotten))
				}
				if dup {
					return nil // a redelivered count (alerts are idempotent by themselves)
				}
			}
			apply(&rec.counters)
			return nil
		}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// change returns what env does to an SLO's counters (nil: nothing) and the
// kind of input, for metrics.
func change(s *ruleset.SLO, env *klaxonv1.Envelope, resolveTimeout time.Duration) (func(*slo.Counters), string) {
	// Nothing is counted after the moment Klaxon received it: a sender's
	// clock running ahead (or a bogus time) must not move the counters'
	// newest minute into the future, where real data would then be dropped.
	received := env.ReceivedAt.AsTime()
	notAfter := func(t time.Time) time.Time {
		if env.ReceivedAt != nil && t.After(received) {
			return received
		}
		return t
	}
	if a := env.GetAlert(); a != nil && len(s.BadAlerts) > 0 && s.BadAlerts.Matches(a.Labels) {
		start := notAfter(a.StartsAt.AsTime())
		if a.Status == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED {
			end := received
			if a.EndsAt != nil {
				end = notAfter(a.EndsAt.AsTime())
			}
			return func(c *slo.Counters) { c.Resolve(a.Fingerprint, start, end) }, "alert_resolved"
		}
		// As Alertmanager: an alert without an end resolves resolve_timeout
		// after it was received, unless sent again. An upstream
		// Alertmanager's webhook is the exception, as in the engine: its
		// firing alerts come without endsAt and an unchanged group is sent
		// again only every repeat_interval (4h by default), so the alert
		// stays open until it is sent resolved.
		var end time.Time // none known: open until resolved
		switch {
		case a.EndsAt != nil:
			end = a.EndsAt.AsTime()
		case env.Source == sourceAlertmanager:
		case env.ReceivedAt != nil:
			end = received.Add(resolveTimeout)
		}
		return func(c *slo.Counters) { c.Fire(a.Fingerprint, start, end) }, "alert_firing"
	}
	ev := env.GetEvent()
	if ev == nil || s.Events == nil {
		return nil, ""
	}
	at := notAfter(ev.Time.AsTime())
	if ev.Kind == "slo" && ev.Name == s.Name {
		good, total := ev.Good, ev.Total
		return func(c *slo.Counters) { c.AddRatio(at, good, total) }, "counts"
	}
	if len(s.Events.Total) > 0 && s.Events.Total.Matches(eventLabels(ev)) {
		good := int64(1)
		if len(s.Events.Bad) > 0 && s.Events.Bad.Matches(eventLabels(ev)) {
			good = 0
		}
		return func(c *slo.Counters) { c.AddRatio(at, good, 1) }, "event"
	}
	return nil, ""
}

func eventLabels(ev *klaxonv1.Event) map[string]string {
	l := make(map[string]string, len(ev.Labels)+2)
	for k, v := range ev.Labels {
		l[k] = v
	}
	l["kind"] = ev.Kind
	if ev.Name != "" {
		l["name"] = ev.Name
	}
	return l
}

// warnNewer logs, at most once an hour per SLO, that its state is a newer
// Klaxon's and left alone (klaxon_slo_newer_state_total counts each time).
func (r *Runner) warnNewer(tenant, name string, now time.Time) {
	k := key(tenant, name)
	r.mu.Lock()
	last, ok := r.newerWarned[k]
	warn := !ok || now.Sub(last) >= time.Hour
	if warn {
		if r.newerWarned == nil {
			r.newerWarned = map[string]time.Time{}
		}
		r.newerWarned[k] = now
	}
	r.mu.Unlock()
	if warn {
		r.log.Warn("SLO state written by a newer Klaxon: left as it is, and not counted or evaluated by this one until it is upgraded", "tenant", tenant, "slo", name)
	}
}

// update applies f to an SLO's record with a revision check and publishes
// what f returns only if this replica's write won, after the record holds it
// as pending (published by the next update should this publish fail).
func (r *Runner) update(ctx context.Context, tenant string, s *ruleset.SLO, f func(*record, *slo.Spec, time.Time) []*klaxonv1.Envelope) error {
	sp, err := r.Spec(tenant, s)
	if err != nil {
		// The loader validates SLOs, so this is a rules bug: skip this SLO
		// rather than failing the message for every other consumer of it.
		r.log.Error("invalid SLO skipped", "tenant", tenant, "slo", s.Name, "err", err)
		return nil
	}
	k := key(tenant, s.Name)
	for attempt := 0; attempt < 10; attempt++ {
		raw, rev, err := r.kv.Read(ctx, k)
		if err != nil {
			return err
		}
		now := r.cfg.Now()
		rec := &record{firing: map[int]time.Time{}}
		if raw != nil {
			if err := rec.unmarshal(raw, now); errors.Is(err, errNewer) {
				r.metrics.newer.WithLabelValues(tenant, s.Name).Inc()
				r.warnNewer(tenant, s.Name, now)
				return nil
			} else if err != nil {
				r.log.Warn("corrupt SLO state; starting over", "slo", s.Name, "err", err)
				rec = &record{firing: map[int]time.Time{}}
			}
		}
		for _, p := range rec.pending {
			if err := r.publishRaw(ctx, p); err != nil {
				return err
			}
		}
		rec.pending = nil
		out := f(rec, sp, now)
		for _, env := range out {
			data, err := env.MarshalVT()
			if err != nil {
				return err
			}
			rec.pending = append(rec.pending, data)
		}
		rev, err = r.kv.Write(ctx, k, rec.marshal(), rev, keyTTL)
		if errors.Is(err, bus.ErrConflict) {
			continue
		} else if err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		for _, env := range out {
			if err := r.publish(ctx, env); err != nil {
				return err // pending: published by the next update
			}
		}
		rec.pending = nil
		if _, err := r.kv.Write(ctx, k, rec.marshal(), rev, keyTTL); err != nil {
			// Published; the next update publishes them again, duplicates.
			r.log.Debug("SLO state not cleared after publishing", "slo", s.Name, "err", err)
		}
		return nil
	}
	return errors.New("slo: too many concurrent updates")
}

// Tick evaluates every SLO and publishes burn-rate alerts on transitions.
func (r *Runner) Tick(ctx context.Context) error {
	var errs []error
	for tenant, t := range r.rules.Get().Tenants {
		for i := range t.SLOs {
			s := &t.SLOs[i]
			err := r.update(ctx, tenant, s, func(rec *record, sp *slo.Spec, now time.Time) []*klaxonv1.Envelope {
				states := sp.Evaluate(&rec.counters, now)
				var out []*klaxonv1.Envelope
				for _, st := range states {
					r.metrics.burn.WithLabelValues(tenant, s.Name, model.Duration(st.Long).String()).Set(slo.Float(st.LongBurn))
					r.metrics.burn.WithLabelValues(tenant, s.Name, model.Duration(st.Short).String()).Set(slo.Float(st.ShortBurn))
					since, was := rec.firing[st.Rule]
					switch {
					case st.Firing && !was:
						rec.firing[st.Rule] = now
						out = append(out, r.alert(tenant, s, sp, st, now, now, true))
					case st.Firing && was:
						// Re-send while firing, as Prometheus does: the engine ends an
						// alert whose endsAt passes without a refresh.
						out = append(out, r.alert(tenant, s, sp, st, since, now, true))
					case !st.Firing && was:
						delete(rec.firing, st.Rule)
						out = append(out, r.alert(tenant, s, sp, st, since, now, false))
					}
				}
				for _, p := range []slo.Period{slo.Rolling, slo.Week, slo.Month, slo.Year} {
					if rep, err := sp.Report(&rec.counters, now, p); err == nil {
						r.metrics.remaining.WithLabelValues(tenant, s.Name, string(p)).Set(slo.Float(rep.RemainingRatio()))
					}
				}
				return out
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("slo %s/%s: %w", tenant, s.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (r *Runner) alert(tenant string, s *ruleset.SLO, sp *slo.Spec, st slo.AlertState, since, now time.Time, firing bool) *klaxonv1.Envelope {
	labels := map[string]string{}
	for k, v := range s.Labels {
		labels[k] = v
	}
	labels["alertname"] = "SLOBurnRate"
	labels["slo"] = s.Name
	labels["severity"] = st.Severity
	labels["long_window"] = model.Duration(st.Long).String()
	labels["short_window"] = model.Duration(st.Short).String()
	ann := map[string]string{
		"summary": fmt.Sprintf("SLO %s (%s%%) is burning its error budget %s× over %s and %s× over %s (threshold %s×)",
			s.Name, s.Objective, st.LongBurn.FloatString(2), labels["long_window"], st.ShortBurn.FloatString(2), labels["short_window"], st.Factor.FloatString(1)),
		"burn_rate_long":  st.LongBurn.FloatString(4),
		"burn_rate_short": st.ShortBurn.FloatString(4),
		"factor":          st.Factor.FloatString(2),
		"objective":       s.Objective,
	}
	for k, v := range s.Annotations {
		ann[k] = v
	}
	a := &klaxonv1.Alert{
		Labels: labels, Annotations: ann, StartsAt: timestamppb.New(since),
		GeneratorUrl: r.cfg.ExternalURL.JoinPath("api/v1/slo", s.Name).String() + "?tenant=" + url.QueryEscape(tenant),
		Status:       klaxonv1.AlertStatus_ALERT_STATUS_FIRING,
	}
	if firing {
		a.EndsAt = timestamppb.New(now.Add(r.validity()))
	} else {
		a.Status = klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED
		a.EndsAt = timestamppb.New(now)
	}
	ls := make(model.LabelSet, len(labels))
	for k, v := range labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	a.Fingerprint = ls.Fingerprint().String()
	return &klaxonv1.Envelope{
		Tenant: tenant, Source: Source, ReceivedAt: timestamppb.New(now),
		Id:      strings.Join([]string{a.Fingerprint, a.Status.String(), fmt.Sprint(since.UnixNano()), fmt.Sprint(a.EndsAt.AsTime().UnixNano())}, "-"),
		Payload: &klaxonv1.Envelope_Alert{Alert: a},
	}
}

// validity is how long a firing burn alert stays valid without a re-send:
// four evaluation intervals, and never less than five minutes.
func (r *Runner) validity() time.Duration { return max(4*r.cfg.Tick, 5*time.Minute) }

// publishRaw publishes a pending envelope.
func (r *Runner) publishRaw(ctx context.Context, data []byte) error {
	var env klaxonv1.Envelope
	if err := env.UnmarshalVT(data); err != nil {
		r.log.Warn("dropping an undecodable pending SLO burn alert", "err", err)
		return nil
	}
	return r.publish(ctx, &env)
}

func (r *Runner) publish(ctx context.Context, env *klaxonv1.Envelope) error {
	data, err := env.MarshalVT()
	if err != nil {
		return err
	}
	if _, err := r.bus.Publish(ctx, bus.Message{Subject: bus.IngestSubject(env.Tenant, env.Source), ID: env.Id, Data: data}); err != nil {
		return err
	}
	status := "firing"
	if env.GetAlert().Status == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED {
		status = "resolved"
	}
	r.metrics.derived.WithLabelValues(env.GetAlert().Labels["severity"], status).Inc()
	// A firing alert sent again (to keep its end ahead) is no news: only a
	// change is logged at info (the re-sends flooded the log every tick).
	level := slog.LevelInfo
	if status == "firing" && !env.GetAlert().GetStartsAt().AsTime().Equal(env.GetReceivedAt().AsTime()) {
		level = slog.LevelDebug
	}
	r.log.Log(ctx, level, "SLO burn rate "+status, "tenant", env.Tenant, "slo", env.GetAlert().Labels["slo"], "severity", env.GetAlert().Labels["severity"],
		"long_window", env.GetAlert().Labels["long_window"])
	return nil
}
