package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// Builder turns a tenant's receiver into its integrations (notify/receivers).
type Builder func(t *ruleset.Tenant, receiver string, log *slog.Logger) ([]Integration, error)

// Config tunes delivery.
type Config struct {
	// MaxDeliver is the number of JetStream deliveries before a notification
	// goes to the dead-letter queue.
	MaxDeliver int
	// Attempts is the number of in-process tries per delivery.
	Attempts int
	// AttemptTimeout bounds one try.
	AttemptTimeout time.Duration
	// MinBackoff and MaxBackoff bound the delay between tries and redeliveries.
	MinBackoff, MaxBackoff time.Duration
	// RateLimit per receiver (notifications per second) and its burst;
	// 0 means unlimited.
	RateLimit float64
	Burst     int
	// NflogTTL is how long an idempotency key is remembered.
	NflogTTL time.Duration
	// OrderWait bounds how long a notification waits for its group's
	// previous one to be dealt with (sent, skipped or dead-lettered) before
	// it is delivered anyway (default 10m); and, from its creation, how
	// long it waits on a failing integration (an open breaker) before it
	// goes to the DLQ.
	OrderWait time.Duration
	// MaxAckPending bounds the notifications the notifier's consumer has
	// delivered and not yet settled (default 1024). A notification that
	// must wait a second or more is deferred (see later), so that waiting does
	// not hold one of these.
	MaxAckPending int
	// Now is the clock.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 8
	}
	if c.Attempts <= 0 {
		c.Attempts = 3
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 15 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 200 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Minute
	}
	if c.Burst <= 0 {
		c.Burst = 40
	}
	if c.NflogTTL <= 0 {
		c.NflogTTL = 7 * 24 * time.Hour
	}
	if c.OrderWait <= 0 {
		c.OrderWait = 10 * time.Minute
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 1024
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Pipeline consumes the NOTIFY stream and delivers each notification through
// every integration of its receiver, exactly once per integration.
type Pipeline struct {
	cfg     Config
	bus     *bus.Bus
	rules   *ruleset.Holder
	build   Builder
	log     *slog.Logger
	metrics *Metrics
	nflog   jetstream.KeyValue

	mu       sync.Mutex
	version  uint64
	cache    map[string][]Integration
	limiters map[string]*rate.Limiter
	breakers map[breakerKey]*breaker
	// reserved holds, by idempotency key, the rate-limit tokens reserved
	// for deferred notifications (takeToken).
	reserved map[string]*rate.Reservation
	// held counts, by idempotency key, the deliveries of a notification put
	// back to wait (for its predecessor, or a failing integration): they are
	// not attempts, so they do not bring it closer to the dead-letter queue.
	// (In memory: another replica counts them as attempts, which only errs
	// toward the DLQ.)
	held map[string]heldCount
}

// heldCount: the waits of a notification, all of them (they lengthen the
// next wait) and those of the NOTIFY message seq (a deferred notification
// comes back as another message, with its attempts in Attempt).
type heldCount struct {
	seq         uint64
	here, total int
}

// NewPipeline builds a pipeline; Run starts it.
func NewPipeline(ctx context.Context, cfg Config, b *bus.Bus, rules *ruleset.Holder, build Builder, log *slog.Logger, reg prometheus.Registerer) (*Pipeline, error) {
	cfg.defaults()
	kv, err := b.KV(ctx, bus.BucketNotifyLog, cfg.NflogTTL)
	if err != nil {
		return nil, err
	}
	return &Pipeline{
		cfg: cfg, bus: b, rules: rules, build: build, log: log, metrics: NewMetrics(reg), nflog: kv,
		cache: map[string][]Integration{}, limiters: map[string]*rate.Limiter{}, breakers: map[breakerKey]*breaker{}, held: map[string]heldCount{}, reserved: map[string]*rate.Reservation{},
	}, nil
}

// Metrics exposes the pipeline's metrics (tests, admin).
func (p *Pipeline) Metrics() *Metrics { return p.metrics }

// Run consumes until ctx ends. Any number of replicas may run: they share
// the durable consumer (competing consumers) and the idempotency log.
func (p *Pipeline) Run(ctx context.Context) error {
	cc, err := p.bus.Consume(ctx, bus.ConsumerConfig{
		Stream:        bus.StreamNotify,
		Durable:       "notifier",
		Filters:       []string{bus.NotifyFilter("*")},
		AckWait:       10 * time.Second,
		MaxAckPending: p.cfg.MaxAckPending,
		NakDelay:      p.cfg.MinBackoff,
		// Deliveries wait on remote APIs: run them side by side, but keep
		// each group's notifications in order (a Slack update after its
		// post, a PagerDuty resolve after its trigger).
		// Publishers shard by bus.NotificationShard.
		Workers: deliveryWorkers,
	}, p.handle)
	if err != nil {
		return err
	}
	p.refreshDLQDepth(ctx)
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			cc.Stop()
			return nil
		case <-t.C:
			p.refreshDLQDepth(ctx)
		}
	}
}

// refreshDLQDepth sets the DLQ depth gauge from the stream info, so it counts
// dead letters of every replica and drops when letters are replayed.
func (p *Pipeline) refreshDLQDepth(ctx context.Context) {
	if d, err := dlqDepth(ctx, p.bus); err == nil {
		p.metrics.DLQDepth.Set(float64(d))
	}
}

// maxHeld bounds the held-delivery counts kept in memory.
const maxHeld = 10000

// deliveryWorkers is how many notifications one notifier delivers at once.
const deliveryWorkers = 16

func (p *Pipeline) handle(ctx context.Context, msg jetstream.Msg) error {
	var pn klaxonv1.Notification
	if err := pn.UnmarshalVT(msg.Data()); err != nil {
		return bus.Permanent(fmt.Errorf("decode notification: %w", err))
	}
	delivered, seq := 1, uint64(0)
	if md, err := msg.Metadata(); err == nil {
		delivered, seq = int(md.NumDelivered), md.Sequence.Stream
	}
	p.mu.Lock()
	held := p.held[pn.IdempotencyKey]
	p.mu.Unlock()
	if held.seq != seq {
		held.seq, held.here = seq, 0
	}
	attempt := int(pn.Attempt) + max(delivered-held.here, 1)
	retry, err := p.Deliver(ctx, &pn)
	if retry {
		// Retried for a sibling's sake: an integration that failed for good
		// goes to the DLQ now, on its own, instead of being posted again at
		// every retry (its error is the same each time) and parked only
		// after MaxDeliver. err keeps what is still to be retried.
		err = p.deadLetterFailed(ctx, &pn, seq, attempt, err)
	}
	var wait time.Duration
	if waitingOnly(err) {
		// Only waiting (on failing integrations, or the rate limit), no
		// attempt made: held, like a turn not yet come, and back once a
		// breaker may let it. At least deferFrom, so the wait is deferred
		// and does not stay pending on the consumer: a probe in flight
		// has the others wait MinBackoff (200 ms) at a time, for as long
		// as it takes (Attempts × AttemptTimeout).
		wait = max(RetryAfterOf(err), p.cfg.MinBackoff, deferFrom)
		// But not for ever: a wait is no attempt, and while a breaker is
		// open only its probe makes one, so a dead endpoint's backlog
		// reached the DLQ one notification per breaker cycle (weeks for a
		// storm's), the DLQ depth stayed 0, and the endpoint, once back,
		// got alerts days old.
		if created := pn.GetCreatedAt(); errors.Is(err, errBreakerOpen) && created != nil {
			if waited := p.cfg.Now().Sub(created.AsTime()); waited >= p.cfg.OrderWait {
				return p.deadLetter(ctx, &pn, seq, attempt-1, fmt.Errorf("still waiting on a failing integration %s after the notification was created (--notify.order-wait %s): %w",
					waited.Round(time.Second), p.cfg.OrderWait, err))
			}
		}
	}
	if errors.Is(err, errNotYourTurn) || wait > 0 {
		p.mu.Lock()
		if len(p.held) >= maxHeld {
			// Entries of notifications finished by another replica are
			// never deleted here: start over rather than grow.
			clear(p.held)
		}
		held.here++
		held.total++
		p.held[pn.IdempotencyKey] = held
		p.mu.Unlock()
		if wait <= 0 {
			wait = time.Second << min(held.total-1, 5)
		}
		return p.later(ctx, msg, &pn, attempt-1, min(wait, 30*time.Second), err)
	}
	if held.total > 0 {
		p.mu.Lock()
		delete(p.held, pn.IdempotencyKey)
		p.mu.Unlock()
	}
	if err == nil {
		return nil
	}
	if retry && attempt < p.cfg.MaxDeliver {
		delay := p.backoff(attempt)
		if ra := RetryAfterOf(err); ra > delay {
			delay = min(ra, p.cfg.MaxBackoff)
		}
		return p.later(ctx, msg, &pn, attempt, delay, err)
	}
	return p.deadLetter(ctx, &pn, seq, attempt, err)
}

// deferFrom: a notification that must wait this long or longer is deferred
// rather than put back (a schedule is to the second).
const deferFrom = time.Second

// later has msg delivered again after d, its attempts so far being
// attempts. A short wait is a NAK with that delay. A longer one defers it: a
// copy, its attempts in Attempt, goes into NOTIFY as a schedule that
// JetStream publishes back to its subject after d, and msg is acknowledged.
// A NAK'd message stays pending on the consumer, and once MaxAckPending of
// them wait (a dead Slack in a storm, for minutes of backoff) the consumer
// delivers no other notification, to any receiver; a deferred one holds
// nothing. If the copy cannot be stored, msg is NAK'd after all. A crash
// between the two leaves both, and the idempotency log sends it once.
func (p *Pipeline) later(ctx context.Context, msg jetstream.Msg, pn *klaxonv1.Notification, attempts int, d time.Duration, err error) error {
	if d < deferFrom || !p.bus.Schedules() {
		return bus.RetryAfter(err, d)
	}
	if perr := p.deferFor(ctx, msg, pn, attempts, d); perr != nil {
		p.log.Warn("could not defer a notification; it waits on the consumer", "err", perr, "key", pn.IdempotencyKey)
		return bus.RetryAfter(err, d)
	}
	return nil
}

func (p *Pipeline) deferFor(ctx context.Context, msg jetstream.Msg, pn *klaxonv1.Notification, attempts int, d time.Duration) error {
	c := proto.Clone(pn).(*klaxonv1.Notification)
	c.Attempt = int32(attempts)
	data, err := c.MarshalVT()
	if err != nil {
		return err
	}
	md, err := msg.Metadata()
	if err != nil {
		return err
	}
	// One schedule per delivery: its id (JetStream's dedup, should this
	// delivery be handled twice) and its subject say which.
	id := fmt.Sprintf("defer:%d:%d:%s", md.Sequence.Stream, md.NumDelivered, pn.IdempotencyKey)
	sum := sha256.Sum256([]byte(id))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = p.bus.Publish(ctx, bus.Message{
		Subject: bus.DeferSubject(pn.Tenant, pn.Receiver, hex.EncodeToString(sum[:16])), ID: id, Data: data,
		Shard: msg.Headers().Get(bus.ShardHeader),
		// The schedule runs on the server's clock, not cfg.Now.
		At: time.Now().Add(d), Target: msg.Subject(),
	})
	if err == nil {
		p.metrics.Deferred.Inc()
	}
	return err
}

// backoff is exponential with full jitter, bounded by MaxBackoff.
func (p *Pipeline) backoff(attempt int) time.Duration {
	d := p.cfg.MinBackoff << min(attempt, 20)
	if d <= 0 || d > p.cfg.MaxBackoff {
		d = p.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// Deliver sends pn through every integration of its receiver that has not
// already sent it (nor was dead-lettered on its own, see deadLetterFailed).
// It returns whether a failure is worth retrying; the integrations that
// failed for good are in err as *failedForGood.
func (p *Pipeline) Deliver(ctx context.Context, pn *klaxonv1.Notification) (retry bool, err error) {
	n := FromProto(pn, p.cfg.Now())
	log := n.Logger(p.log)
	ints, err := p.integrations(pn.Tenant, pn.Receiver, log)
	if errors.Is(err, ErrUnavailable) {
		return true, &Error{Reason: ReasonOther, Err: err}
	}
	if err != nil {
		return false, &Error{Reason: ReasonConfig, Err: err}
	}
	// The receiver's rate limit counts notifications, not integrations: the
	// first integration that really sends takes the token for all.
	var limited bool
	limit := func() error {
		if limited {
			return nil
		}
		if err := p.takeToken(ctx, n); err != nil {
			return err
		}
		limited = true
		return nil
	}
	var errs []error
	for _, in := range ints {
		r, err := p.deliverOne(ctx, n, in, limit, log)
		if err == nil {
			continue
		}
		err = fmt.Errorf("%s[%d]: %w", in.Name, in.Index, err)
		if !r {
			err = &failedForGood{in: in, err: err}
		}
		retry = retry || r
		errs = append(errs, err)
	}
	return retry, errors.Join(errs...)
}

// failedForGood is an integration's failure that is not worth retrying
// (a 4xx, a bad config), in the error Deliver returns: handle dead-letters
// it on its own when the notification is retried for a sibling.
type failedForGood struct {
	in  Integration
	err error
}

func (f *failedForGood) Error() string { return f.err.Error() }
func (f *failedForGood) Unwrap() error { return f.err }

// errRateLimited: the receiver's rate limit has no token for the
// notification for a second or more; it waits, without an attempt, off
// the worker (see takeToken).
var errRateLimited = errors.New("receiver's rate limit reached; waiting for its turn")

// maxReserved bounds the rate-limit reservations kept for deferred
// notifications.
const maxReserved = 10000

// takeToken takes n's token from its receiver's rate limit, waiting in the
// worker if it comes within deferFrom. A later token is reserved for n
// (kept by idempotency key) and n waits for it deferred, with an error
// that says so: waiting in the worker for it (rate.Limiter.Wait) held the
// worker, and once a storm to one rate-limited receiver filled the
// workers' queues, no receiver's notification was delivered until that
// receiver's backlog drained. n takes its reserved token when it comes
// back; a storm's notifications so wait in line, each deferred until its
// own turn, not all retrying at every free token.
func (p *Pipeline) takeToken(ctx context.Context, n *Notification) error {
	p.mu.Lock()
	r := p.reserved[n.IdempotencyKey]
	delete(p.reserved, n.IdempotencyKey)
	p.mu.Unlock()
	if r == nil {
		r = p.limiter(n.Tenant, n.Receiver).Reserve()
	}
	if !r.OK() {
		return &Error{Reason: ReasonConfig, Err: errors.New("rate limit with a burst of 0 lets nothing through")}
	}
	d := r.Delay()
	if d >= deferFrom {
		p.mu.Lock()
		if len(p.reserved) >= maxReserved {
			// Reservations of notifications that went to another replica
			// are never taken here: start over rather than grow.
			for _, old := range p.reserved {
				old.Cancel()
			}
			clear(p.reserved)
		}
		p.reserved[n.IdempotencyKey] = r
		p.mu.Unlock()
		p.metrics.RateLimitWaits.WithLabelValues(n.Receiver).Inc()
		return &Error{Reason: ReasonOther, Err: errRateLimited, RetryAfter: d}
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (p *Pipeline) deliverOne(ctx context.Context, n *Notification, in Integration, limit func() error, log *slog.Logger) (bool, error) {
	key := nflogKey(n.IdempotencyKey, in)
	e, err := p.nflog.Get(ctx, key)
	switch {
	case err == nil && supersededMark(e.Value()):
		// Given up on, and the group delivered a newer notification here
		// since: a replay sending it would go back in time. Like a parked
		// one, not audited (a notification retried for a sibling passes
		// here at each retry).
		p.metrics.Suppressed.WithLabelValues(in.Name, "superseded").Inc()
		return false, nil
	case err == nil && parkedMark(e.Value()):
		// Failed for good and dead-lettered on its own: not tried again
		// until that dead letter is replayed.
		p.metrics.Suppressed.WithLabelValues(in.Name, "dead_letter").Inc()
		return false, nil
	case err == nil && !deadMark(e.Value()):
		p.metrics.Suppressed.WithLabelValues(in.Name, "duplicate").Inc()
		p.audit(n, in.Name, "duplicate", nil)
		return false, nil
	case err != nil && !errors.Is(err, jetstream.ErrKeyNotFound):
		return true, fmt.Errorf("read notification log: %w", err)
	}
	if n.Resolved() && !in.SendResolved {
		p.metrics.Suppressed.WithLabelValues(in.Name, "send_resolved_false").Inc()
		// Recorded, so the group's next notification need not wait for it.
		p.record(ctx, key, "skipped", in, log)
		p.supersede(ctx, n, in, nil, log)
		return false, nil
	}
	prev, err := p.turn(ctx, n, in, log)
	if err != nil {
		if errors.Is(err, errNotYourTurn) {
			p.metrics.Held.WithLabelValues(in.Name).Inc()
		}
		return true, err
	}
	// The breaker's backoffs are real waits, so on the wall clock, not
	// cfg.Now (a test's clock, which need not move).
	br, tok := p.breaker(n.Tenant, n.Receiver, in), &probeToken{}
	if ok, wait := br.allow(time.Now(), tok, p.cfg.MinBackoff); !ok {
		p.metrics.BreakerWaits.WithLabelValues(in.Name).Inc()
		return true, br.waitError(wait)
	}
	defer br.done(tok)
	if err := limit(); err != nil {
		return true, err
	}
	var lastErr error
	for try := 0; try < p.cfg.Attempts; try++ {
		if try > 0 {
			delay := p.backoff(try)
			if ra := RetryAfterOf(lastErr); ra > 0 {
				delay = ra
			}
			if delay > p.cfg.AttemptTimeout {
				break // leave long waits to JetStream redelivery
			}
			select {
			case <-ctx.Done():
				return true, ctx.Err()
			case <-time.After(delay):
			}
		}
		p.metrics.Requests.WithLabelValues(in.Name).Inc()
		start := time.Now()
		actx, cancel := context.WithTimeout(n.Context(ctx), p.cfg.AttemptTimeout)
		retry, err := in.Notifier.Notify(actx, n)
		cancel()
		p.metrics.Latency.WithLabelValues(in.Name).Observe(time.Since(start).Seconds())
		if err == nil || !retry {
			br.success() // it answered
		}
		if err == nil {
			p.metrics.Sent.WithLabelValues(in.Name).Inc()
			// Recorded after sending: a crash in between may resend once, but a
			// crash after this line (before the JetStream ack) never does.
			p.record(ctx, key, time.Now().UTC().Format(time.RFC3339Nano), in, log)
			p.supersede(ctx, n, in, prev, log)
			p.audit(n, in.Name, "success", nil)
			log.Debug("notified", "integration", in.Name, "alerts", len(n.Alerts))
			return false, nil
		}
		p.metrics.Failed.WithLabelValues(in.Name, string(ReasonOf(err))).Inc()
		if lastErr == nil || lastErr.Error() != err.Error() {
			log.Warn("notify attempt failed", "integration", in.Name, "retry", retry, "err", err)
		}
		lastErr = err
		if !retry {
			p.audit(n, in.Name, "failed", err)
			return false, err
		}
		if !br.failure(time.Now(), tok, p.backoff, err) {
			break // another delivery probes it; this one goes back to JetStream
		}
	}
	p.audit(n, in.Name, "retry", lastErr)
	return true, lastErr
}

// nflogKey is the notification log key of a notification's delivery
// through one integration.
func nflogKey(idempotencyKey string, in Integration) string {
	return fmt.Sprintf("%s.%s-%d", idempotencyKey, in.Name, in.Index)
}

// deadMarkPrefix starts the log value of a delivery given up on (its
// notification went to the DLQ): its group's next notification need not
// wait for it, and a replay of the dead letter still sends it.
const deadMarkPrefix = "dead-letter "

func deadMark(v []byte) bool { return bytes.HasPrefix(v, []byte(deadMarkPrefix)) }

// parkedMarkPrefix starts the log value of a delivery that failed for good
// while its notification was retried for another integration, and went to
// the DLQ on its own (deadLetterFailed). Like a send, it is skipped by every
// delivery of the notification (its retries, another replica's) and lets
// the group's next notification go ahead there; Replay of its dead letter
// turns it into a dead mark, so that the replay sends it.
const parkedMarkPrefix = "parked "

func parkedMark(v []byte) bool { return bytes.HasPrefix(v, []byte(parkedMarkPrefix)) }

// supersededMarkPrefix starts the log value of a delivery given up on
// (dead or parked) after which the group's later notification was
// delivered through the same integration (supersede): a replay of its dead
// letter sends nothing there, since it would send a state older than the
// one the receiver already has.
const supersededMarkPrefix = "superseded "

func supersededMark(v []byte) bool { return bytes.HasPrefix(v, []byte(supersededMarkPrefix)) }

// giveUpMark is the log value of a dead or parked delivery (prefix) at t of
// a notification whose predecessor in its group is previous (empty for a
// group's first): supersede follows it back along the group's chain.
func giveUpMark(prefix string, t time.Time, previous string) []byte {
	v := prefix + t.UTC().Format(time.RFC3339Nano)
	if previous != "" {
		v += " " + previous
	}
	return []byte(v)
}

// markPrevious is the predecessor a give-up mark names ("" for none, or a
// mark written before marks named it).
func markPrevious(v []byte) string {
	f := strings.Fields(string(v))
	if len(f) < 3 {
		return ""
	}
	return f[2]
}

// maxSupersede bounds how far back along a group's chain supersede walks:
// that many notifications of one group given up on in a row.
const maxSupersede = 64

// supersede marks the deliveries through in of n's predecessors that were
// given up on (dead-lettered, or parked) and not sent since, now that n,
// which holds the group's newer state, was dealt with there. Replaying one of
// those letters would otherwise send a stale state after it: a trigger after
// its resolve opens a PagerDuty incident nobody resolves, a Slack post says
// firing again. It walks back the group's chain as the marks record it and
// stops at the first delivery that was not given up on. prev is the
// predecessor's value as turn read it before the send (nil: not read): one
// that was not given up on then is not now (no mark overwrites a send), so
// the common case, a predecessor that was sent, costs no second read.
func (p *Pipeline) supersede(ctx context.Context, n *Notification, in Integration, prev []byte, log *slog.Logger) {
	if prev != nil && !deadMark(prev) && !parkedMark(prev) {
		return
	}
	mark := []byte(supersededMarkPrefix + p.cfg.Now().UTC().Format(time.RFC3339Nano) + " by " + n.IdempotencyKey)
	key := n.PreviousKey
	for i := 0; key != "" && i < maxSupersede; i++ {
		old, wrote, err := p.rewrite(ctx, nflogKey(key, in), func(cur []byte) []byte {
			if deadMark(cur) || parkedMark(cur) {
				return mark
			}
			return nil // never given up on, sent, skipped, or superseded already
		})
		if err != nil {
			log.Warn("could not mark a dead letter superseded; replaying it would send an older state", "integration", in.Name, "previous", key, "err", err)
		}
		if !wrote {
			return
		}
		key = markPrevious(old)
	}
}

// rewrite replaces the notification-log value at key by next(current)
// (current nil when there is none) with a revision-checked write; next
// returning nil leaves it. After a conflict it reads again at once; a
// failed read or write is retried with a backoff, as record does. It
// returns the value it replaced and whether it wrote.
func (p *Pipeline) rewrite(ctx context.Context, key string, next func(cur []byte) []byte) (old []byte, wrote bool, err error) {
	for failures, conflicts := 0, 0; failures < 5 && conflicts < 10; {
		var cur []byte
		var rev uint64
		e, gerr := p.nflog.Get(ctx, key)
		if gerr == nil {
			cur, rev = e.Value(), e.Revision()
		}
		err = gerr
		if gerr == nil || errors.Is(gerr, jetstream.ErrKeyNotFound) {
			v := next(cur)
			if v == nil {
				return cur, false, nil
			}
			if cur == nil {
				_, err = p.nflog.Create(ctx, key, v)
			} else {
				_, err = p.nflog.Update(ctx, key, v, rev)
			}
			if err == nil {
				return cur, true, nil
			}
			if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				conflicts++ // written meanwhile: decide again on what is there now
				continue
			}
		}
		failures++
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(100 * time.Millisecond << failures):
		}
	}
	return nil, false, err
}

// record writes a delivery's outcome to the notification log. It retries
// for a while: the write fails while the cluster elects a new leader for
// the bucket, and a lost record both allows a resend and holds the group's
// next notification until OrderWait.
func (p *Pipeline) record(ctx context.Context, key, value string, in Integration, log *slog.Logger) {
	for try := 0; ; try++ {
		_, err := p.nflog.Put(ctx, key, []byte(value))
		if err == nil {
			return
		}
		if try == 4 || ctx.Err() != nil {
			log.Warn("could not record the delivery; a redelivery may resend it", "integration", in.Name, "outcome", value, "err", err)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond << try):
		}
	}
}

// errNotYourTurn: the group's previous notification is still being
// delivered (another replica, or a retry waiting for its backoff).
var errNotYourTurn = errors.New("waiting for the group's previous notification")

// turn says whether n may go out through in now: only once the group's
// previous notification was dealt with there (sent, skipped, dead-lettered)
// so a resolve never overtakes its trigger, nor a Slack update its post.
// It does not wait for a predecessor whose record has expired, nor past
// OrderWait (a predecessor lost, or an integration added since it went out).
// prev is the predecessor's log value when it read one (supersede uses it).
func (p *Pipeline) turn(ctx context.Context, n *Notification, in Integration, log *slog.Logger) (prev []byte, err error) {
	if n.PreviousKey == "" {
		return nil, nil
	}
	now := p.cfg.Now()
	if now.Sub(n.PreviousAt) >= p.cfg.NflogTTL {
		return nil, nil
	}
	if e, err := p.nflog.Get(ctx, nflogKey(n.PreviousKey, in)); err == nil {
		return e.Value(), nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("read notification log: %w", err)
	}
	if waited := now.Sub(n.CreatedAt); waited >= p.cfg.OrderWait {
		log.Warn("delivering before the group's previous notification was dealt with", "integration", in.Name, "previous", n.PreviousKey, "waited", waited)
		return nil, nil
	}
	return nil, fmt.Errorf("%w %s", errNotYourTurn, n.PreviousKey)
}

// maxDeadLetterError bounds a dead letter's error text (one error per
// integration, each with up to 1 KB of the response body).
const maxDeadLetterError = 8 << 10

// deadLetter parks pn in the DLQ. Its msg id includes the NOTIFY sequence, so
// a replayed notification that dies again is parked again (not dropped as a
// duplicate of its first death).
func (p *Pipeline) deadLetter(ctx context.Context, pn *klaxonv1.Notification, seq uint64, attempts int, cause error) error {
	dl, err := p.publishDeadLetter(ctx, pn, fmt.Sprintf("%s.dlq.%d", pn.IdempotencyKey, seq), attempts, cause)
	if err != nil {
		// Could not park it: keep it in NOTIFY and try again later.
		return bus.RetryAfter(err, p.cfg.MaxBackoff)
	}
	// Marks the integrations that did not send, where nothing is recorded
	// yet (Create), so the group's next notification goes ahead.
	if ints, err := p.integrations(pn.Tenant, pn.Receiver, p.log); err == nil {
		mark := giveUpMark(deadMarkPrefix, p.cfg.Now(), pn.PreviousKey)
		for _, in := range ints {
			// ErrKeyExists: it sent (or was skipped, or parked) there; nothing to mark.
			if _, err := p.nflog.Create(ctx, nflogKey(pn.IdempotencyKey, in), mark); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
				p.log.Warn("could not mark the dead letter in the notification log; the group's next notification waits out --notify.order-wait", "integration", in.Name, "err", err)
			}
		}
	}
	p.metrics.DeadLetters.WithLabelValues(pn.Receiver, dl.Reason).Inc()
	p.refreshDLQDepth(ctx)
	p.log.Error("notification dead-lettered", "tenant", pn.Tenant, "receiver", pn.Receiver, "group_key", pn.GroupKey, "attempts", attempts, "err", cause)
	p.audit(FromProto(pn, p.cfg.Now()), "", "dead_letter", cause)
	return nil
}

// deadLetterFailed parks in the DLQ, each in a dead letter of its own, the
// integrations of err (Deliver's) that failed for good, and returns the rest
// of err. It is for a notification retried for another integration: a
// permanent failure does not get better with retries, and was posted
// again at each of them. The letter holds the whole notification, so Replay
// can send it again, and is keyed (msg id) by the integration's
// notification-log key and the NOTIFY sequence, which Replay reads back
// (rearm). The integration is marked parked, so neither the retries nor the
// group's next notification wait for it. One that cannot be parked stays
// in err, and is retried with the notification as before.
func (p *Pipeline) deadLetterFailed(ctx context.Context, pn *klaxonv1.Notification, seq uint64, attempts int, err error) error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return err
	}
	var rest []error
	for _, e := range j.Unwrap() {
		f, ok := e.(*failedForGood)
		if !ok {
			rest = append(rest, e)
			continue
		}
		key := nflogKey(pn.IdempotencyKey, f.in)
		dl, perr := p.publishDeadLetter(ctx, pn, fmt.Sprintf("%s.dlq.%d", key, seq), attempts, f)
		if perr != nil {
			p.log.Warn("could not dead-letter a failed integration; it is tried again with the notification", "integration", f.in.Name, "err", perr)
			rest = append(rest, e)
			continue
		}
		p.park(ctx, key, giveUpMark(parkedMarkPrefix, p.cfg.Now(), pn.PreviousKey), f.in)
		p.metrics.DeadLetters.WithLabelValues(pn.Receiver, dl.Reason).Inc()
		p.refreshDLQDepth(ctx)
		p.log.Error("integration dead-lettered; the notification is retried for the others", "tenant", pn.Tenant, "receiver", pn.Receiver, "group_key", pn.GroupKey,
			"integration", f.in.Name, "index", f.in.Index, "attempts", attempts, "err", f)
		p.audit(FromProto(pn, p.cfg.Now()), f.in.Name, "dead_letter", f)
	}
	return errors.Join(rest...)
}

// park writes the parked mark at key, unless the delivery is recorded as
// sent (or skipped, or superseded) meanwhile: a redelivery of the same
// notification on another replica may have sent it since this one failed,
// and a Put over that record made a replay of the letter send it again.
// A dead mark (a replay of this letter that failed for good again) is
// parked again.
func (p *Pipeline) park(ctx context.Context, key string, mark []byte, in Integration) {
	_, _, err := p.rewrite(ctx, key, func(cur []byte) []byte {
		if cur == nil || deadMark(cur) {
			return mark
		}
		return nil
	})
	if err != nil {
		p.log.Warn("could not park the integration in the notification log; it is tried again with the notification", "integration", in.Name, "key", key, "err", err)
	}
}

// publishDeadLetter stores pn's dead letter in the DLQ under msg id id.
func (p *Pipeline) publishDeadLetter(ctx context.Context, pn *klaxonv1.Notification, id string, attempts int, cause error) (*klaxonv1.DeadLetter, error) {
	dl := &klaxonv1.DeadLetter{
		Notification: pn,
		Reason:       string(ReasonOf(cause)),
		Error:        cause.Error(),
		Attempts:     int32(attempts),
		FailedAt:     timestamppb.New(p.cfg.Now()),
	}
	if len(dl.Error) > maxDeadLetterError {
		dl.Error = dl.Error[:maxDeadLetterError] + "…"
	}
	data, err := proto.Marshal(dl)
	if err != nil {
		return nil, err
	}
	msg := bus.Message{Subject: bus.DLQSubject(pn.Tenant, pn.Receiver), ID: id, Data: data}
	_, err = p.bus.Publish(ctx, msg)
	for cause := dl.Error; errors.Is(err, bus.ErrTooLarge) && len(dl.Notification.Alerts) > 0; {
		// The notification fit NOTIFY; with the error beside it, not the
		// DLQ. Parked with half its alerts, then a quarter, ..., rather
		// than retried for ever; the error says how many were left out.
		slim := proto.Clone(dl.Notification).(*klaxonv1.Notification)
		slim.Alerts = slim.Alerts[:len(slim.Alerts)/2]
		dl.Notification = slim
		dl.Error = fmt.Sprintf("%s (this dead letter keeps %d of the notification's %d alerts: all were too large for a message)", cause, len(slim.Alerts), len(pn.Alerts))
		if msg.Data, err = proto.Marshal(dl); err != nil {
			return nil, err
		}
		_, err = p.bus.Publish(ctx, msg)
		if err == nil {
			p.log.Warn("dead letter too large for a message; parked with part of its alerts", "group_key", pn.GroupKey, "kept", len(slim.Alerts), "alerts", len(pn.Alerts))
		}
	}
	if err != nil {
		return nil, err
	}
	return dl, nil
}

// audit records what happened, fire-and-forget (the AUDIT stream captures it).
func (p *Pipeline) audit(n *Notification, integration, outcome string, err error) {
	rec := &klaxonv1.AuditRecord{Integration: integration, Outcome: outcome, At: timestamppb.New(p.cfg.Now()),
		Notification: &klaxonv1.Notification{Tenant: n.Tenant, Receiver: n.Receiver, GroupKey: n.GroupKey, IdempotencyKey: n.IdempotencyKey}}
	if err != nil {
		rec.Error = err.Error()
	}
	data, _ := rec.MarshalVT()
	_ = p.bus.NC.Publish(bus.AuditSubject(n.Tenant), data)
}

func (p *Pipeline) integrations(tenant, receiver string, log *slog.Logger) ([]Integration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v := p.rules.Version(); v != p.version {
		p.version = v
		p.cache = map[string][]Integration{}
	}
	k := tenant + "\x00" + receiver
	if ints, ok := p.cache[k]; ok {
		return ints, nil
	}
	t := p.rules.Tenant(tenant)
	if t == nil || t.Receiver(receiver) == nil {
		return nil, fmt.Errorf("tenant %q has no receiver %q in the current rules", tenant, receiver)
	}
	ints, err := p.build(t, receiver, log)
	if err != nil {
		return nil, err
	}
	p.cache[k] = ints
	return ints, nil
}

func (p *Pipeline) limiter(tenant, receiver string) *rate.Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := tenant + "\x00" + receiver
	l, ok := p.limiters[k]
	if !ok {
		lim := rate.Limit(p.cfg.RateLimit)
		if p.cfg.RateLimit <= 0 {
			lim = rate.Inf
		}
		l = rate.NewLimiter(lim, p.cfg.Burst)
		p.limiters[k] = l
	}
	return l
}
