// Package heartbeat watches dead-man switches: something (Alertmanager's
// always-firing Watchdog, a cron job) must check in at least every interval
// (+ grace); when it stops, a derived alert fires, and it resolves when the
// heartbeat returns. State lives in JetStream KV, so a heartbeat missed while
// Klaxon itself was down fires right after it starts again.
package heartbeat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
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

// Source is the envelope source of derived heartbeat alerts.
const Source = "deadman"

// Config of the monitor.
type Config struct {
	Now         func() time.Time
	Tick        time.Duration
	ExternalURL *url.URL
	// NoConsumer: Run only ticks; the caller feeds Process from a consumer
	// it shares with the other derived-alert components.
	NoConsumer bool
	// Consumer is the durable INGEST consumer that feeds Process: the
	// caller's with NoConsumer, else Run's own ("heartbeat"). A heartbeat
	// does not fire while beats received before its deadline may still be
	// waiting in it (see judgeAt).
	Consumer string
}

// Monitor tracks heartbeats and fires when one goes silent.
type Monitor struct {
	cfg     Config
	bus     *bus.Bus
	kv      *bus.TTLBucket
	rules   *ruleset.Holder
	log     *slog.Logger
	derived *prometheus.CounterVec
	beats   prometheus.Counter
	// swept is the rules version (from 1) Tick last swept with (sweep); 0:
	// none yet. sweptAt is when (unix nanoseconds, cfg.Now).
	swept   atomic.Uint64
	sweptAt atomic.Int64
}

// state is one heartbeat's record in KV.
type state struct {
	// ArmedAt is when Klaxon started expecting it (first seen in the rules),
	// so a heartbeat that never arrives fires too.
	ArmedAt     time.Time `json:"armed_at"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
	FiringSince time.Time `json:"firing_since,omitzero"`
	// ResentAt is when the firing alert was last re-sent.
	ResentAt time.Time `json:"resent_at,omitzero"`
	// Pending is a derived alert decided with this state and not yet known
	// to be published (an Envelope): written with the state, published,
	// then cleared; whoever updates the state next publishes it first (its
	// id makes a second copy a duplicate). Without it, a publish that
	// failed after the state was written lost the alert: a resolve was
	// never sent (the state said resolved) and a first page waited for the
	// next re-send.
	Pending []byte `json:"pending,omitempty"`
	// RemovedAt is when a sweep first found the heartbeat missing from the
	// rules; the state is deleted once it has been missing for removeAfter,
	// and a replica that has it in its rules clears the mark.
	RemovedAt time.Time `json:"removed_at,omitzero"`
}

// removeAfter is how long a heartbeat must be missing from the rules before
// its state is deleted, and sweepEvery how often Tick looks (besides each
// new rules version). Replicas load the rules on their own: during a rollout
// one with the old rules saw a new heartbeat as removed and deleted its state,
// and the replicas with the new rules then armed it anew: a silent heartbeat
// that was paging resolved, and paged again only interval + grace later.
const (
	removeAfter = 10 * time.Minute
	sweepEvery  = time.Minute
)

// Firing alerts are re-sent every resendEvery with endsAt validity ahead, as
// Prometheus does: the engine ends an alert whose endsAt passes unrefreshed.
const (
	resendEvery = time.Minute
	validity    = 5 * time.Minute
)

func (s *state) ref() time.Time {
	if s.LastSeen.After(s.ArmedAt) {
		return s.LastSeen
	}
	return s.ArmedAt
}

// New builds a monitor.
func New(ctx context.Context, cfg Config, b *bus.Bus, rules *ruleset.Holder, log *slog.Logger, reg prometheus.Registerer) (*Monitor, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Consumer == "" && !cfg.NoConsumer {
		cfg.Consumer = "heartbeat"
	}
	if cfg.ExternalURL == nil {
		cfg.ExternalURL = &url.URL{Scheme: "http", Host: "localhost:9095"}
	}
	kv, err := b.TTLKV(ctx, bus.BucketHeartbeats)
	if err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	return &Monitor{cfg: cfg, bus: b, kv: kv, rules: rules, log: log,
		derived: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_heartbeat_derived_alerts_total", Help: "Dead-man alerts published, by status.",
		}, []string{"status"}),
		beats: f.NewCounter(prometheus.CounterOpts{
			Name: "klaxon_heartbeats_received_total", Help: "Heartbeats recorded (events and matching alerts).",
		}),
	}, nil
}

// Run consumes INGEST for heartbeats and checks for silence every tick.
func (m *Monitor) Run(ctx context.Context) error {
	if !m.cfg.NoConsumer {
		cc, err := m.bus.ConsumeEnvelopes(ctx, bus.ConsumerConfig{Durable: m.cfg.Consumer, MaxAckPending: 4096}, m.Process)
		if err != nil {
			return err
		}
		defer cc.Stop()
	}
	// Check at once: a heartbeat missed while Klaxon was down fires now
	// (unless its beats are still in the consumer's backlog: judgeAt).
	if err := m.Tick(ctx); err != nil {
		m.log.Warn("heartbeat check", "err", err)
	}
	t := time.NewTicker(m.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := m.Tick(ctx); err != nil {
				m.log.Warn("heartbeat check", "err", err)
			}
		}
	}
}

// Process records a beat for every heartbeat env stands for: a heartbeat
// event of that name, or a firing alert its matchers select.
func (m *Monitor) Process(ctx context.Context, env *klaxonv1.Envelope) error {
	if env.Source == Source {
		return nil
	}
	t := m.rules.Tenant(env.Tenant)
	if t == nil {
		return nil
	}
	received := env.ReceivedAt.AsTime()
	if env.ReceivedAt == nil {
		received = m.cfg.Now()
	}
	var errs []error
	for i := range t.Heartbeats {
		hb := &t.Heartbeats[i]
		at, ok := beatOf(hb, env)
		if !ok {
			continue
		}
		if err := m.beat(ctx, env.Tenant, hb, at, received); err != nil {
			errs = append(errs, fmt.Errorf("heartbeat %s: %w", hb.Name, err))
		}
	}
	return errors.Join(errs...)
}

func beatOf(hb *ruleset.Heartbeat, env *klaxonv1.Envelope) (time.Time, bool) {
	if ev := env.GetEvent(); ev != nil && ev.Kind == "heartbeat" && ev.Name == hb.Name {
		return ev.Time.AsTime(), true
	}
	if a := env.GetAlert(); a != nil && len(hb.Match) > 0 && a.Status == klaxonv1.AlertStatus_ALERT_STATUS_FIRING && hb.Match.Matches(a.Labels) {
		// A Watchdog keeps its startsAt across re-sends: each delivery is a beat.
		return env.ReceivedAt.AsTime(), true
	}
	return time.Time{}, false
}

func (m *Monitor) key(tenant, name string) string { return bus.Token(tenant) + "." + bus.Token(name) }

// beat records a beat at at, carried by a message Klaxon received at
// receivedAt. It resolves a firing heartbeat if the beat is on time as
// judged at receivedAt (judgeAt): a beat read late, from a backlog, still
// resolves. Before, it was judged at the clock, so every beat read more than
// interval + grace late left the heartbeat firing.
func (m *Monitor) beat(ctx context.Context, tenant string, hb *ruleset.Heartbeat, at, receivedAt time.Time) error {
	m.beats.Inc()
	return m.update(ctx, tenant, hb, func(s *state, now time.Time) *klaxonv1.Envelope {
		if at.After(s.LastSeen) {
			s.LastSeen = at
		}
		if !s.FiringSince.IsZero() && !m.stale(hb, s, judgeAt(hb, now, receivedAt, true)) {
			env := m.alert(tenant, hb, s, now, false)
			s.FiringSince, s.ResentAt = time.Time{}, time.Time{}
			return env
		}
		return nil
	})
}

func (m *Monitor) stale(hb *ruleset.Heartbeat, s *state, now time.Time) bool {
	return now.After(s.ref().Add(time.Duration(hb.Interval) + time.Duration(hb.Grace)))
}

// judgeAt is the time a heartbeat's silence is judged at. Beats are judged
// by when Klaxon received them, so a heartbeat is judged at readTo, the
// receipt time up to which its consumer has processed INGEST (known: false
// if that could not be found out): a beat received before the deadline may
// still be waiting there (Klaxon's engine restarting after a few minutes
// down, the consumer behind in an alert storm). But never more than the
// heartbeat's grace before now: a pipeline stuck or further behind than
// grace pages all the same, at most grace late.
func judgeAt(hb *ruleset.Heartbeat, now, readTo time.Time, known bool) time.Time {
	at := now.Add(-time.Duration(hb.Grace))
	if known && readTo.After(at) {
		at = readTo
	}
	if at.After(now) {
		return now
	}
	return at
}

// readTo returns the receipt time up to which the consumer feeding Process
// has processed INGEST: every message received before it was processed.
// It costs a few round trips, so Tick asks only when a heartbeat is due to
// fire. known is false if it cannot tell.
func (m *Monitor) readTo(ctx context.Context, now time.Time) (at time.Time, known bool) {
	if m.cfg.Consumer == "" {
		return now, true
	}
	cons, err := m.bus.JS.Consumer(ctx, bus.StreamIngest, m.cfg.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return now, true // not created yet: no backlog of its own
	}
	if err != nil {
		m.log.Warn("heartbeat: cannot read the consumer's progress", "consumer", m.cfg.Consumer, "err", err)
		return time.Time{}, false
	}
	ci := cons.CachedInfo()
	if ci.NumPending == 0 && ci.NumAckPending == 0 {
		return now, true
	}
	// Every message up to the ack floor is processed; the first one after
	// it (that still exists) is the oldest that may not be.
	st, err := m.bus.JS.Stream(ctx, bus.StreamIngest)
	var msg *jetstream.RawStreamMsg
	if err == nil {
		msg, err = st.GetMsg(ctx, ci.AckFloor.Stream+1, jetstream.WithGetMsgSubject(bus.IngestFilter("*")))
	}
	if err != nil {
		m.log.Warn("heartbeat: cannot read the consumer's oldest pending message", "consumer", m.cfg.Consumer, "err", err)
		return time.Time{}, false
	}
	// Its envelopes' receivedAt (the stream's time if it does not decode):
	// the clock beats are judged by.
	at = msg.Time
	if envs, err := bus.DecodeEnvelopes(msg.Header, msg.Data); err == nil {
		for i, env := range envs {
			if t := env.ReceivedAt.AsTime(); env.ReceivedAt != nil && (i == 0 || t.Before(at)) {
				at = t
			}
		}
	}
	return at, true
}

// Tick fires heartbeats that went silent.
func (m *Monitor) Tick(ctx context.Context) error {
	var errs []error
	// The consumer's progress, looked up once a tick and only when a
	// heartbeat is due to fire.
	var read struct {
		done, known bool
		at          time.Time
	}
	silent := func(hb *ruleset.Heartbeat, s *state, now time.Time) bool {
		if !m.stale(hb, s, now) {
			return false
		}
		if !read.done {
			read.at, read.known = m.readTo(ctx, now)
			read.done = true
		}
		return m.stale(hb, s, judgeAt(hb, now, read.at, read.known))
	}
	// Version before Get: a reload in between is swept at the next tick.
	version, set := m.rules.Version(), m.rules.Get()
	if now := m.cfg.Now(); m.swept.Load() != version || now.Sub(time.Unix(0, m.sweptAt.Load())) >= sweepEvery {
		if err := m.sweep(ctx, set, now); err != nil {
			errs = append(errs, fmt.Errorf("delete the state of removed heartbeats: %w", err))
		} else {
			m.swept.Store(version)
			m.sweptAt.Store(now.UnixNano())
		}
	}
	for name, t := range set.Tenants {
		for i := range t.Heartbeats {
			hb := &t.Heartbeats[i]
			err := m.update(ctx, name, hb, func(s *state, now time.Time) *klaxonv1.Envelope {
				s.RemovedAt = time.Time{} // in these rules: not removed
				switch {
				case s.FiringSince.IsZero() && silent(hb, s, now):
					s.FiringSince, s.ResentAt = now, now
					return m.alert(name, hb, s, now, true)
				case !s.FiringSince.IsZero() && now.Sub(s.ResentAt) >= resendEvery:
					s.ResentAt = now
					return m.alert(name, hb, s, now, true)
				}
				return nil
			})
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// sweep deletes the state of heartbeats that have been missing from the
// rules (set) for removeAfter: it marks those it finds missing (RemovedAt),
// and deletes those marked removeAfter before now. A heartbeat removed and
// added again later is then a new one: armed when added, it fires interval +
// grace after that, not at once from its old LastSeen, nor re-sends a page
// with its old FiringSince. A firing one's page, no longer re-sent, ends at
// its endsAt (5 minutes at most). One still in the rules keeps its state
// however long Klaxon was down, so a heartbeat that went silent meanwhile
// fires right after start: a TTL on the state would lose that after an
// outage longer than the TTL, and re-arming state older than the rules' load
// would hide every silent heartbeat for interval + grace after each restart.
func (m *Monitor) sweep(ctx context.Context, set *ruleset.Set, now time.Time) error {
	keep := map[string]bool{}
	for name, t := range set.Tenants {
		for i := range t.Heartbeats {
			keep[m.key(name, t.Heartbeats[i].Name)] = true
		}
	}
	kl, err := m.kv.ListKeys(ctx)
	if err != nil {
		return err
	}
	var missing []string
	for key := range kl.Keys() {
		if !keep[key] {
			missing = append(missing, key)
		}
	}
	var errs []error
	for _, key := range missing {
		raw, rev, err := m.kv.Read(ctx, key)
		if err != nil || raw == nil {
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			}
			continue
		}
		var s state
		if json.Unmarshal(raw, &s) != nil {
			s = state{} // unreadable: deleted after removeAfter like any other
		}
		if s.RemovedAt.IsZero() || s.RemovedAt.After(now) {
			s.RemovedAt = now
			data, _ := json.Marshal(&s)
			if _, err := m.kv.Write(ctx, key, data, rev, 0); err != nil && !errors.Is(err, bus.ErrConflict) {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			}
			continue
		}
		if now.Sub(s.RemovedAt) < removeAfter {
			continue
		}
		// At the revision read: a replica that put it back in its rules
		// meanwhile wins.
		if err := m.kv.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
			if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			}
			continue
		}
		m.log.Info("heartbeat removed from the rules: state deleted", "key", key, "missing_since", s.RemovedAt)
	}
	return errors.Join(errs...)
}

// update applies f to the heartbeat's state with a revision check; only the
// replica whose write wins publishes the resulting alert, after the state
// holds it as Pending.
func (m *Monitor) update(ctx context.Context, tenant string, hb *ruleset.Heartbeat, f func(*state, time.Time) *klaxonv1.Envelope) error {
	key := m.key(tenant, hb.Name)
	for attempt := 0; attempt < 10; attempt++ {
		raw, rev, err := m.kv.Read(ctx, key)
		if err != nil {
			return err
		}
		now := m.cfg.Now()
		var s state
		if raw == nil || json.Unmarshal(raw, &s) != nil {
			s = state{ArmedAt: now}
		}
		if s.Pending != nil {
			if err := m.publishRaw(ctx, s.Pending); err != nil {
				return err
			}
			s.Pending = nil
		}
		env := f(&s, now)
		if env != nil {
			if s.Pending, err = env.MarshalVT(); err != nil {
				return err
			}
		}
		data, _ := json.Marshal(&s)
		if raw != nil && bytes.Equal(data, raw) {
			return nil
		}
		rev, err = m.kv.Write(ctx, key, data, rev, 0)
		if errors.Is(err, bus.ErrConflict) {
			continue
		} else if err != nil {
			return err
		}
		if env == nil {
			return nil
		}
		if err := m.publish(ctx, env); err != nil {
			return err // Pending: published by the next update
		}
		s.Pending = nil
		data, _ = json.Marshal(&s)
		if _, err := m.kv.Write(ctx, key, data, rev, 0); err != nil && !errors.Is(err, bus.ErrConflict) {
			// Published; the next update publishes it again, a duplicate.
			m.log.Debug("heartbeat state not cleared after publishing", "heartbeat", hb.Name, "err", err)
		}
		return nil
	}
	return errors.New("too many concurrent updates")
}

func (m *Monitor) alert(tenant string, hb *ruleset.Heartbeat, s *state, now time.Time, firing bool) *klaxonv1.Envelope {
	labels := map[string]string{"alertname": "DeadMansSwitch", "heartbeat": hb.Name}
	for k, v := range hb.Labels {
		labels[k] = v
	}
	last := "never"
	if !s.LastSeen.IsZero() {
		last = s.LastSeen.UTC().Format(time.RFC3339)
	}
	ann := map[string]string{
		"summary":   fmt.Sprintf("Heartbeat %s not seen since %s (expected every %s, grace %s)", hb.Name, last, hb.Interval, hb.Grace),
		"last_seen": last,
		"interval":  hb.Interval.String(),
		"grace":     hb.Grace.String(),
	}
	for k, v := range hb.Annotations {
		ann[k] = v
	}
	a := &klaxonv1.Alert{
		Labels: labels, Annotations: ann, StartsAt: timestamppb.New(s.FiringSince),
		GeneratorUrl: m.cfg.ExternalURL.JoinPath("api/v1/heartbeats", hb.Name).String() + "?tenant=" + url.QueryEscape(tenant),
		Status:       klaxonv1.AlertStatus_ALERT_STATUS_FIRING,
	}
	if firing {
		a.EndsAt = timestamppb.New(now.Add(validity))
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
		Id:      fmt.Sprintf("%s-%s-%d-%d", a.Fingerprint, a.Status, s.FiringSince.UnixNano(), a.EndsAt.AsTime().UnixNano()),
		Payload: &klaxonv1.Envelope_Alert{Alert: a},
	}
}

// publishRaw publishes a Pending envelope.
func (m *Monitor) publishRaw(ctx context.Context, data []byte) error {
	var env klaxonv1.Envelope
	if err := env.UnmarshalVT(data); err != nil {
		m.log.Warn("dropping an undecodable pending heartbeat alert", "err", err)
		return nil
	}
	return m.publish(ctx, &env)
}

func (m *Monitor) publish(ctx context.Context, env *klaxonv1.Envelope) error {
	data, err := env.MarshalVT()
	if err != nil {
		return err
	}
	if _, err := m.bus.Publish(ctx, bus.Message{Subject: bus.IngestSubject(env.Tenant, env.Source), ID: env.Id, Data: data}); err != nil {
		return fmt.Errorf("publish heartbeat alert: %w", err)
	}
	status := "firing"
	if env.GetAlert().Status == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED {
		status = "resolved"
	}
	m.derived.WithLabelValues(status).Inc()
	// A firing alert sent again (to keep its end ahead) is no news: only a
	// change is logged at info (the re-sends flooded the log every minute).
	level := slog.LevelInfo
	if status == "firing" && !env.GetAlert().GetStartsAt().AsTime().Equal(env.GetReceivedAt().AsTime()) {
		level = slog.LevelDebug
	}
	m.log.Log(ctx, level, "heartbeat "+status, "tenant", env.Tenant, "heartbeat", env.GetAlert().Labels["heartbeat"])
	return nil
}
