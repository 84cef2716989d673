package bus

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
)

// ErrNotStored means JetStream did not acknowledge a message: the caller must
// not acknowledge it to its own sender (HTTP 503, Nak, ...).
var ErrNotStored = errors.New("not stored in jetstream")

// ErrTooLarge: a message is larger than the NATS server takes (its
// max_payload). Publishing it again fails again; it comes wrapped in
// ErrNotStored.
var ErrTooLarge = nats.ErrMaxPayload

// Message is one message to publish with its deduplication id.
type Message struct {
	Subject string
	ID      string // Nats-Msg-Id; empty disables dedup for this message
	Data    []byte
	// Shard is the key that keeps messages in order across a consumer's
	// Workers (header ShardHeader); empty: the subject.
	Shard string
	// Count > 0 marks an envelope batch of that many (header BatchHeader).
	Count int
	// At, if set, makes the message a schedule: JetStream stores it on
	// Subject (a DeferSubject) and, at At (to the second, rounded up),
	// publishes it, headers and all but its ID, to Target, then drops it.
	// Only where Bus.Schedules says so.
	At     time.Time
	Target string
}

// ShardHeader carries Message.Shard.
const ShardHeader = "Klaxon-Shard"

// NotificationShard is the shard key of a notification on NOTIFY: tenant,
// receiver and group key, so the notifier's workers deliver one group's
// notifications in order (a Slack update after its post, a PagerDuty
// resolve after its trigger).
func NotificationShard(n *klaxonv1.Notification) string {
	return n.Tenant + "\x00" + n.Receiver + "\x00" + n.GroupKey
}

// Result of publishing one message.
type Result struct {
	// Stored: JetStream acknowledged the message (stored now, or before:
	// Duplicate).
	Stored    bool
	Duplicate bool
	Seq       uint64
}

// Publish stores msgs and returns once every one is acknowledged by JetStream
// (or ctx ends). Messages are sent asynchronously and their acks awaited
// together, so a batch costs about one round trip, not one per message.
// With an error, the results, if not nil, say which messages were stored
// all the same (some of several may be, the rest not).
func (b *Bus) Publish(ctx context.Context, msgs ...Message) ([]Result, error) {
	if len(msgs) == 1 {
		m := msgs[0]
		ack, err := b.pubJS.PublishMsg(ctx, natsMsg(m), msgOpts(m)...)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrNotStored, m.Subject, err)
		}
		return []Result{{Stored: true, Duplicate: ack.Duplicate, Seq: ack.Sequence}}, nil
	}
	res := make([]Result, len(msgs))
	var errs []error
	pipelined(ctx, b.pubJS, len(msgs),
		func(i int) (*nats.Msg, []jetstream.PublishOpt) { return natsMsg(msgs[i]), msgOpts(msgs[i]) },
		func(i int, ack *jetstream.PubAck, err error) {
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", msgs[i].Subject, err))
				return
			}
			res[i] = Result{Stored: true, Duplicate: ack.Duplicate, Seq: ack.Sequence}
		})
	if err := ctx.Err(); err != nil && len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrNotStored, err)
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("%w: %w", ErrNotStored, errors.Join(errs...))
	}
	return res, nil
}

// writeChunk bounds the publishes in flight at once, under the connection's
// limit of pending asynchronous publishes (4096: past it a publish waits
// only 200 ms for acks before failing). A storm's flush can hand Publish
// 100k notifications, and a group commit WriteMany as many groups.
const writeChunk = 1024

// pipelined sends n messages (msg builds the i-th) without waiting for each
// ack, at most writeChunk at a time, and reports every message's ack or
// error to done, in order: n messages cost about one round trip per chunk,
// not one each. Messages not settled when ctx ends are reported with its
// error, and no further chunk is sent.
func pipelined(ctx context.Context, js jetstream.JetStream, n int, msg func(i int) (*nats.Msg, []jetstream.PublishOpt), done func(i int, ack *jetstream.PubAck, err error)) {
	futures := make([]jetstream.PubAckFuture, min(n, writeChunk))
	for start := 0; start < n; start += writeChunk {
		end := min(start+writeChunk, n)
		if err := ctx.Err(); err != nil {
			for i := start; i < n; i++ {
				done(i, nil, err)
			}
			return
		}
		for i := start; i < end; i++ {
			m, opts := msg(i)
			f, err := js.PublishMsgAsync(m, opts...)
			if err != nil {
				done(i, nil, err)
				f = nil
			}
			futures[i-start] = f
		}
		for i := start; i < end; i++ {
			f := futures[i-start]
			if f == nil {
				continue
			}
			select {
			case ack := <-f.Ok():
				done(i, ack, nil)
			case err := <-f.Err():
				done(i, nil, err)
			case <-ctx.Done():
				done(i, nil, ctx.Err())
			}
		}
	}
}

func natsMsg(m Message) *nats.Msg {
	h := nats.Header{}
	if m.Shard != "" {
		h.Set(ShardHeader, m.Shard)
	}
	if m.Count > 0 {
		h.Set(BatchHeader, strconv.Itoa(m.Count))
	}
	return &nats.Msg{Subject: m.Subject, Data: m.Data, Header: h}
}

func msgOpts(m Message) []jetstream.PublishOpt {
	var opts []jetstream.PublishOpt
	if m.ID != "" {
		opts = append(opts, jetstream.WithMsgID(m.ID))
	}
	if !m.At.IsZero() {
		// The schedule is to the second: round up, so it never fires early.
		at := m.At.Truncate(time.Second)
		if at.Before(m.At) {
			at = at.Add(time.Second)
		}
		opts = append(opts, jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget(m.Target))
	}
	return opts
}

// Handler processes one message. Returning nil acks it; an error naks it with
// a delay so JetStream redelivers it; a Permanent error terminates it.
type Handler func(ctx context.Context, msg jetstream.Msg) error

// PermanentError marks a message that can never be processed (poison).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so Consume terminates the message instead of retrying.
func Permanent(err error) error { return &PermanentError{Err: err} }

// DelayError asks for redelivery after Delay instead of the consumer default.
type DelayError struct {
	Err   error
	Delay time.Duration
}

func (e *DelayError) Error() string { return e.Err.Error() }
func (e *DelayError) Unwrap() error { return e.Err }

// RetryAfter wraps err so Consume naks the message with the given delay.
func RetryAfter(err error, d time.Duration) error { return &DelayError{Err: err, Delay: d} }

// ConsumerConfig describes a durable pull consumer.
type ConsumerConfig struct {
	Stream  string
	Durable string
	Filters []string
	// AckWait is how long a message may be processed before redelivery.
	AckWait time.Duration
	// MaxDeliver bounds redeliveries (-1 unlimited).
	MaxDeliver int
	// BackOff between redeliveries after a Nak without delay or an ack timeout.
	BackOff []time.Duration
	// MaxAckPending bounds in-flight messages.
	MaxAckPending int
	// DeliverNew starts a new consumer at new messages only (tail-like).
	DeliverNew bool
	// NakDelay is the redelivery delay after a handler error.
	NakDelay time.Duration
	// Workers > 1 runs the handler on that many goroutines, so a slow
	// handler (a webhook taking 100 ms) does not hold up the rest. Messages
	// with the same shard key (Message.Shard, else the subject) go to the
	// same worker, in order.
	Workers int
	// Skip, for ConsumeEnvelopes and ConsumeEnvelopeBatches: a message for
	// which it returns true is acknowledged without being decoded or
	// handled (nothing would use it).
	Skip func(subject string) bool
	// Linger, for ConsumeBatches: after a batch of at least LingerFrom
	// items (a backlog, a storm), the next batch waits up to Linger to fill
	// before it is handled. A handler whose cost is mostly per batch (a
	// group commit's round trip, JetStream's per-request overhead for a
	// short pipeline) then does more per batch; below LingerFrom, at a
	// trickle, a batch is handled as soon as it is taken.
	Linger     time.Duration
	LingerFrom int
}

// Consume runs h for every message of a durable pull consumer until ctx ends.
// Messages are acked only after h returns nil, so a crash means redelivery.
func (b *Bus) Consume(ctx context.Context, cc ConsumerConfig, h Handler) (*Consumption, error) {
	cc = withDefaults(cc)
	log := b.log.With("stream", cc.Stream, "consumer", cc.Durable)
	handle := func(msg jetstream.Msg) {
		stop := keepInProgress([]jetstream.Msg{msg}, cc.AckWait)
		err := h(ctx, msg)
		stop()
		settle(msg, err, cc, log)
	}
	dispatch := handle
	if cc.Workers > 1 {
		dispatch = shard(ctx, cc, handle)
	}
	return b.consume(ctx, cc, dispatch, log)
}

// BatchHandler processes the messages of one batch: nil acks them all, an
// error settles every one of them as Handler's error does. A message the
// handler settled itself (Term of a poison message) is left as it is.
type BatchHandler func(ctx context.Context, msgs []jetstream.Msg) error

// ConsumeBatches runs h for batches of messages: whatever the consumer has
// ready, up to maxBatch envelopes (a batch message counts as the envelopes
// it holds), as soon as h is free. Under load a batch grows, so
// a handler that commits its state once per batch (group commit) pays one
// round trip for many messages; when idle, a batch is one message and waits
// for nothing. After a large batch, ConsumerConfig.Linger may have the
// next one wait to fill.
//
// It fetches rather than using the client's push-style Consume: a handler
// that holds a batch unacknowledged for a commit's round trip makes the
// client's pull accounting stall until its heartbeat check gives up, tens
// of seconds later. Fetching a batch only when the last one is settled
// keeps at most maxBatch messages in flight.
func (b *Bus) ConsumeBatches(ctx context.Context, cc ConsumerConfig, maxBatch int, h BatchHandler) (*Consumption, error) {
	cc = withDefaults(cc)
	log := b.log.With("stream", cc.Stream, "consumer", cc.Durable)
	cons, err := b.consumer(ctx, cc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &Consumption{cancel: cancel, done: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(c.finished)
		batch := make([]jetstream.Msg, 0, maxBatch)
		wrapped := make([]*batchMsg, 0, maxBatch)
		f := &fetcher{max: maxBatch, avg: 1}
		// caughtUp: the last message delivered said none were pending. Then
		// the next batch starts by waiting for a message, not by asking for
		// what is ready: that round trip would find nothing and, at a
		// steady trickle, add its time to every message's latency.
		caughtUp := false
		// lingering: the last batch held at least cc.LingerFrom items.
		lingering := false
		for ctx.Err() == nil {
			batch = batch[:0]
			var err error
			if caughtUp {
				batch, err = fetchWait(ctx, cons, idleWait)
				if err == nil && len(batch) > 0 && pending(batch[len(batch)-1]) > 0 {
					batch, err = f.fetch(cons, batch) // a burst began: take what is ready too
				}
			} else if batch, err = f.fetch(cons, batch); err == nil && len(batch) == 0 {
				// Idle: wait for one message and handle it at once; what
				// arrives meanwhile makes the next batch.
				batch, err = fetchWait(ctx, cons, idleWait)
			}
			if lingering && err == nil && len(batch) > 0 {
				batch, err = f.fill(cons, batch, cc.Linger)
			}
			if len(batch) > 0 {
				caughtUp = err == nil && pending(batch[len(batch)-1]) == 0
				lingering = cc.Linger > 0 && items(batch) >= cc.LingerFrom
			}
			if err != nil && len(batch) == 0 {
				caughtUp = false
				if ctx.Err() != nil {
					return
				}
				log.Warn("fetch failed; retrying", "err", err)
				if next, cerr := b.consumer(ctx, cc); cerr == nil {
					cons = next
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(250 * time.Millisecond):
				}
				continue
			}
			if len(batch) == 0 {
				continue
			}
			if err != nil {
				// Handle what came before the error; the next fetch retries.
				log.Debug("fetch ended early", "err", err, "messages", len(batch))
			}
			wrapped = wrapped[:0]
			for i, m := range batch {
				w := &batchMsg{Msg: m}
				wrapped = append(wrapped, w)
				batch[i] = w
			}
			stop := keepInProgress(batch, cc.AckWait)
			herr := h(ctx, batch)
			stop()
			for _, m := range wrapped {
				if !m.settled {
					settle(m.Msg, herr, cc, log)
				}
			}
		}
	}()
	return c, nil
}

// idleWait is how long one fetch waits for a message on an idle stream.
const idleWait = 5 * time.Second

// fetcher takes the messages the consumer has ready, without waiting, until
// they hold max items: a message counts as the envelopes it carries
// (header BatchHeader), so a batch of batch messages stays as bounded as a
// batch of single ones. It asks for as many messages as should fill the
// rest, judging by the size of the messages it saw last.
type fetcher struct {
	max int
	avg float64 // items per message, recently
	// ask bounds the next request: the client allocates channels for as
	// many messages as a request asks for, so an idle stream, whose batches
	// are one message, asks for few; a filled request doubles it.
	ask int
}

func (f *fetcher) fetch(cons jetstream.Consumer, batch []jetstream.Msg) ([]jetstream.Msg, error) {
	items := items(batch)
	for items < f.max {
		// At most 256 a request: the client allocates room for as many
		// as it asks for.
		n := min(256, max(16, f.ask), max(1, int(float64(f.max-items)/f.avg)))
		mb, err := cons.FetchNoWait(n)
		if err != nil {
			return batch, err
		}
		got, w := 0, 0
		for m := range mb.Messages() {
			batch = append(batch, m)
			got++
			w += weight(m)
		}
		if err := mb.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return batch, err
		}
		if got == 0 {
			return batch, nil
		}
		items += w
		f.avg = float64(w) / float64(got)
		f.ask = 2 * got
		if got < n {
			return batch, nil // nothing more is ready
		}
	}
	return batch, nil
}

// fill waits up to d for the messages that top batch up to f.max items
// (as fetch judges them), and returns batch with what came.
func (f *fetcher) fill(cons jetstream.Consumer, batch []jetstream.Msg, d time.Duration) ([]jetstream.Msg, error) {
	rest := f.max - items(batch)
	if rest <= 0 {
		return batch, nil
	}
	// FetchMaxWait, not a context's deadline: the server ends the request
	// after d, and everything it delivered before comes ahead of that end.
	// A client deadline only slightly later than the server's (FetchContext)
	// can fire while delivered messages are still on their way, in a storm
	// when the CPU is busiest; those would wait out AckWait to come back.
	mb, err := cons.Fetch(min(256, max(1, int(float64(rest)/f.avg))), jetstream.FetchMaxWait(d))
	if err != nil {
		return batch, err
	}
	for m := range mb.Messages() {
		batch = append(batch, m)
	}
	if err := mb.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
		return batch, err
	}
	return batch, nil
}

// items is how many envelopes batch carries.
func items(batch []jetstream.Msg) int {
	n := 0
	for _, m := range batch {
		n += weight(m)
	}
	return n
}

// pending is how many messages the consumer had left to deliver when it
// delivered msg (unknown counts as some).
func pending(msg jetstream.Msg) uint64 {
	md, err := msg.Metadata()
	if err != nil {
		return 1
	}
	return md.NumPending
}

// weight is how many envelopes msg carries.
func weight(msg jetstream.Msg) int {
	if n, err := strconv.Atoi(msg.Headers().Get(BatchHeader)); err == nil && n > 0 {
		return n
	}
	return 1
}

// fetchWait waits up to d for one message, or until ctx ends.
func fetchWait(ctx context.Context, cons jetstream.Consumer, d time.Duration) ([]jetstream.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	mb, err := cons.Fetch(1, jetstream.FetchContext(ctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, err
	}
	var out []jetstream.Msg
	for m := range mb.Messages() {
		out = append(out, m)
	}
	if err := mb.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && ctx.Err() == nil {
		return out, err
	}
	return out, nil
}

// batchMsg notes that a batch handler terminated a message itself.
type batchMsg struct {
	jetstream.Msg
	settled bool
}

func (m *batchMsg) TermWithReason(reason string) error {
	m.settled = true
	return m.Msg.TermWithReason(reason)
}

func withDefaults(cc ConsumerConfig) ConsumerConfig {
	if cc.AckWait == 0 {
		cc.AckWait = 10 * time.Second
	}
	if cc.MaxDeliver == 0 {
		cc.MaxDeliver = -1
	}
	if cc.NakDelay == 0 {
		cc.NakDelay = time.Second
	}
	return cc
}

// settle acks msg after its handler's err is nil, and otherwise terminates
// it (PermanentError) or naks it for redelivery after a delay.
func settle(msg jetstream.Msg, err error, cc ConsumerConfig, log *slog.Logger) {
	var perm *PermanentError
	var delay *DelayError
	switch {
	case err == nil:
		// A lost ack means redelivery, which idempotency keys make harmless.
		if aerr := msg.Ack(); aerr != nil {
			log.Warn("ack failed; message will be redelivered", "subject", msg.Subject(), "err", aerr)
		}
	case errors.As(err, &perm):
		log.Error("dropping poison message", "subject", msg.Subject(), "err", err)
		_ = msg.TermWithReason(err.Error())
	case errors.As(err, &delay):
		log.Debug("redelivering later", "subject", msg.Subject(), "delay", delay.Delay, "err", err)
		_ = msg.NakWithDelay(delay.Delay)
	default:
		log.Warn("handler failed; redelivering", "subject", msg.Subject(), "err", err)
		_ = msg.NakWithDelay(cc.NakDelay)
	}
}

// consumer creates or updates the durable consumer. In a cluster the
// consumer answers only once its leader is elected: wait for that, so the
// first pulls do not fail with no responders.
func (b *Bus) consumer(ctx context.Context, cc ConsumerConfig) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:        cc.Durable,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cc.AckWait,
		MaxDeliver:     cc.MaxDeliver,
		BackOff:        cc.BackOff,
		MaxAckPending:  cc.MaxAckPending,
		FilterSubjects: cc.Filters,
		Replicas:       b.cfg.Replicas,
	}
	if cc.DeliverNew {
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	var cons jetstream.Consumer
	err := b.retry(ctx, "consumer "+cc.Durable+" on "+cc.Stream, func(ctx context.Context) (err error) {
		if cons, err = b.JS.CreateOrUpdateConsumer(ctx, cc.Stream, cfg); err != nil {
			return err
		}
		_, err = cons.Info(ctx)
		return err
	})
	return cons, err
}

// consume creates or updates the durable consumer and feeds every message
// to dispatch, restarting the client's consume loop if it ends.
func (b *Bus) consume(ctx context.Context, cc ConsumerConfig, dispatch func(jetstream.Msg), log *slog.Logger) (*Consumption, error) {
	start := func() (jetstream.ConsumeContext, error) {
		cons, err := b.consumer(ctx, cc)
		if err != nil {
			return nil, err
		}
		return cons.Consume(dispatch, jetstream.PullMaxMessages(consumeBuffer), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				log.Debug("consume", "err", err)
			}
		}))
	}
	cur, err := start()
	if err != nil {
		return nil, err
	}
	c := &Consumption{cur: cur, done: make(chan struct{})}
	go c.supervise(ctx, start, log)
	return c, nil
}

// Consumption is a running consumer. If the client's consume loop ends
// while the caller still wants messages (a cluster that lost the consumer's
// leader for too long), it starts it again.
type Consumption struct {
	mu      sync.Mutex
	cur     jetstream.ConsumeContext // Consume
	stopped bool
	done    chan struct{}
	// ConsumeBatches: its loop's cancel, and closed when the loop ended.
	cancel   context.CancelFunc
	finished chan struct{}
}

// Stop ends the consumption; unacknowledged messages are redelivered. For
// ConsumeBatches it returns once the batch being handled is settled.
func (c *Consumption) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	if c.cur != nil {
		c.cur.Stop()
	}
	if c.cancel != nil {
		c.cancel()
	}
	close(c.done)
	c.mu.Unlock()
	if c.finished != nil {
		<-c.finished
	}
}

func (c *Consumption) supervise(ctx context.Context, start func() (jetstream.ConsumeContext, error), log *slog.Logger) {
	for {
		c.mu.Lock()
		closed := c.cur.Closed()
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		case <-closed:
		}
		c.mu.Lock()
		stopped := c.stopped
		c.mu.Unlock()
		if stopped || ctx.Err() != nil {
			return
		}
		log.Warn("consume loop ended; starting it again")
		next, err := start()
		if err != nil {
			log.Error("cannot restart consumer", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		c.mu.Lock()
		if c.stopped {
			next.Stop()
			c.mu.Unlock()
			return
		}
		c.cur = next
		c.mu.Unlock()
	}
}

// keepInProgress tells JetStream every ackWait/3 that msgs are still being
// worked on, until the returned stop is called, so AckWait can stay short
// (fast redelivery after a crash) while a slow delivery with retries is not
// redelivered to another replica. A timer, not a goroutine per message: the
// common case (done well within ackWait/3) costs one timer.
func keepInProgress(msgs []jetstream.Msg, ackWait time.Duration) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	t = time.AfterFunc(ackWait/3, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		for _, m := range msgs {
			_ = m.InProgress()
		}
		t.Reset(ackWait / 3)
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}

// EnvelopeHandler processes one decoded envelope.
type EnvelopeHandler func(ctx context.Context, env *klaxonv1.Envelope) error

// ConsumeEnvelopes is Consume for the INGEST stream: it decodes each message
// into an Envelope (an undecodable one is poison: terminated) and passes it on.
func (b *Bus) ConsumeEnvelopes(ctx context.Context, cc ConsumerConfig, h EnvelopeHandler) (*Consumption, error) {
	cc = ingestDefaults(cc)
	log := b.log.With("stream", cc.Stream, "consumer", cc.Durable)
	return b.Consume(ctx, cc, func(ctx context.Context, msg jetstream.Msg) error {
		if cc.Skip != nil && cc.Skip(msg.Subject()) {
			return nil
		}
		envs, err := DecodeEnvelopes(msg.Headers(), msg.Data())
		if err != nil {
			return Permanent(err)
		}
		// A batch is acknowledged as one message: if an envelope fails, the
		// whole batch comes back, and the handlers are idempotent. An
		// envelope that can never be processed is dropped alone.
		var errs []error
		for _, env := range envs {
			err := h(ctx, env)
			var perm *PermanentError
			if errors.As(err, &perm) && len(envs) > 1 {
				log.Error("dropping poison envelope of a batch", "subject", msg.Subject(), "id", env.Id, "err", err)
				continue
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
}

// ingestDefaults: an envelope consumer reads every tenant's INGEST unless
// told otherwise.
func ingestDefaults(cc ConsumerConfig) ConsumerConfig {
	if cc.Stream == "" {
		cc.Stream = StreamIngest
	}
	if len(cc.Filters) == 0 {
		cc.Filters = []string{IngestFilter("*")}
	}
	return cc
}

// EnvelopeBatchHandler processes the decoded envelopes of one batch. seqs[i]
// is the INGEST stream sequence of the message that carried envs[i] (the
// envelopes of one batch message share it): a consumer can tell a
// redelivered old message from news it has already applied.
type EnvelopeBatchHandler func(ctx context.Context, envs []*klaxonv1.Envelope, seqs []uint64) error

// ConsumeEnvelopeBatches is ConsumeBatches for the INGEST stream. An
// undecodable message is terminated on its own (poison) and left out of the
// batch.
func (b *Bus) ConsumeEnvelopeBatches(ctx context.Context, cc ConsumerConfig, maxBatch int, h EnvelopeBatchHandler) (*Consumption, error) {
	cc = ingestDefaults(cc)
	log := b.log.With("stream", cc.Stream, "consumer", cc.Durable)
	return b.ConsumeBatches(ctx, cc, maxBatch, func(ctx context.Context, msgs []jetstream.Msg) error {
		envs := make([]*klaxonv1.Envelope, 0, len(msgs))
		seqs := make([]uint64, 0, len(msgs))
		for _, m := range msgs {
			if cc.Skip != nil && cc.Skip(m.Subject()) {
				continue // acknowledged with the batch
			}
			es, err := DecodeEnvelopes(m.Headers(), m.Data())
			if err != nil {
				log.Error("dropping poison message", "subject", m.Subject(), "err", err)
				_ = m.TermWithReason(err.Error())
				continue
			}
			var seq uint64
			if md, err := m.Metadata(); err == nil {
				seq = md.Sequence.Stream
			}
			envs = append(envs, es...)
			for range es {
				seqs = append(seqs, seq)
			}
		}
		if len(envs) == 0 {
			return nil
		}
		return h(ctx, envs, seqs)
	})
}

// shard starts cc.Workers goroutines running handle and returns the
// dispatcher that routes each message to one of them by its shard key. A
// full worker blocks the dispatcher (backpressure, bounded by
// MaxAckPending); at ctx's end messages still queued are left unacked and
// come back after AckWait.
func shard(ctx context.Context, cc ConsumerConfig, handle func(jetstream.Msg)) func(jetstream.Msg) {
	queues := make([]chan jetstream.Msg, cc.Workers)
	for i := range queues {
		q := make(chan jetstream.Msg, 16)
		queues[i] = q
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-q:
					handle(m)
				}
			}
		}()
	}
	return func(msg jetstream.Msg) {
		key := msg.Headers().Get(ShardHeader)
		if key == "" {
			key = msg.Subject()
		}
		// FNV rather than a seeded hash: the same key picks the same worker in
		// every process, which keeps sharding reproducible (and testable).
		h := fnv.New64a()
		h.Write([]byte(key))
		select {
		case queues[h.Sum64()%uint64(len(queues))] <- msg:
		case <-ctx.Done():
		}
	}
}

// consumeBuffer is how many messages a consumer's client buffers ahead of
// its handler. A message of the INGEST stream can hold a batch of hundreds
// of alerts (up to MaxBatchBytes), and several consumers read that stream:
// a small buffer bounds the memory an alert storm ties up in flight, and
// still hides the round trip of the next pull.
const consumeBuffer = 64
