package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
)

// ErrNoDeadLetter means the sequence holds no dead letter of the tenant
// (never existed, already replayed, or another tenant's).
var ErrNoDeadLetter = errors.New("no such dead letter")

// ErrSuperseded means a replayed dead letter was not sent: its group
// delivered a newer notification everywhere it would have gone, so it
// would have sent an older state after it (a trigger after its resolve).
var ErrSuperseded = errors.New("superseded")

// DeadLetter is one entry of the DLQ stream with its stream sequence, the
// handle Replay takes.
type DeadLetter struct {
	Seq     uint64
	Subject string
	Stored  time.Time
	*klaxonv1.DeadLetter
}

// DeadLetterFilter selects dead letters. Empty fields match everything.
type DeadLetterFilter struct {
	Tenant   string
	Receiver string
	// Limit bounds the answer (default 1000).
	Limit int
}

func (f DeadLetterFilter) subject() string {
	switch {
	case f.Tenant != "" && f.Receiver != "":
		return bus.DLQSubject(f.Tenant, f.Receiver)
	case f.Tenant != "":
		return bus.DLQFilter(f.Tenant)
	}
	return bus.DLQFilter("*")
}

// ListDeadLetters returns the dead letters matching f, oldest first. It
// reads with an ephemeral ordered consumer, so listing never disturbs the
// stream or other readers.
func ListDeadLetters(ctx context.Context, b *bus.Bus, f DeadLetterFilter) ([]DeadLetter, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	s, err := b.JS.Stream(ctx, bus.StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("dlq stream: %w", err)
	}
	// A one-shot read, deleted when done (and else dropped by the server 10 s
	// after it, not the client's default 5 min): a dashboard polling the
	// list piled consumers up to the server's limit.
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{f.subject()}, InactiveThreshold: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("dlq reader: %w", err)
	}
	defer func() {
		if ci := cons.CachedInfo(); ci != nil {
			_ = s.DeleteConsumer(context.WithoutCancel(ctx), ci.Name)
		}
	}()
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dlq reader: %w", err)
	}
	pending := int(info.NumPending)
	var out []DeadLetter
	for pending > 0 && len(out) < f.Limit {
		batch, err := cons.Fetch(min(pending, f.Limit-len(out), 256), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return out, fmt.Errorf("dlq fetch: %w", err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				continue
			}
			var dl klaxonv1.DeadLetter
			if err := proto.Unmarshal(msg.Data(), &dl); err != nil {
				continue
			}
			out = append(out, DeadLetter{Seq: md.Sequence.Stream, Subject: msg.Subject(), Stored: md.Timestamp, DeadLetter: &dl})
			pending = int(md.NumPending)
		}
		if batch.Error() != nil && !errors.Is(batch.Error(), jetstream.ErrNoMessages) {
			return out, fmt.Errorf("dlq fetch: %w", batch.Error())
		}
		if got == 0 {
			break
		}
	}
	return out, nil
}

// Replay republishes the dead letter at seq to NOTIFY with a fresh message
// id and a reset attempt count, then deletes it from the DLQ. tenant must
// own it ("" only for admins acting on every tenant). Integrations that
// already delivered it before it died are skipped by the notification log,
// so a replay only sends where the original failed. The dead letter of one
// integration (it failed for good while the notification was retried for
// another, see rearm) sends there, and to any integration the notification
// itself died on later (which then has a dead letter of its own too).
func Replay(ctx context.Context, b *bus.Bus, tenant string, seq uint64) (*klaxonv1.Notification, error) {
	s, err := b.JS.Stream(ctx, bus.StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("dlq stream: %w", err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("%w: seq %d", ErrNoDeadLetter, seq)
		}
		return nil, fmt.Errorf("dlq get %d: %w", seq, err)
	}
	if tenant != "" && !strings.HasPrefix(raw.Subject, strings.TrimSuffix(bus.DLQFilter(tenant), ">")) {
		return nil, fmt.Errorf("%w: seq %d", ErrNoDeadLetter, seq)
	}
	var dl klaxonv1.DeadLetter
	if err := proto.Unmarshal(raw.Data, &dl); err != nil || dl.Notification == nil {
		return nil, fmt.Errorf("dlq %d: not a dead letter: %v", seq, err)
	}
	n := proto.Clone(dl.Notification).(*klaxonv1.Notification)
	n.Attempt = 0
	msgID := raw.Header.Get(jetstream.MsgIDHeader)
	if by, err := superseded(ctx, b, n, msgID); err != nil {
		return nil, fmt.Errorf("replay %d: %w", seq, err)
	} else if by != "" {
		// Nothing left to send: the letter goes, and the caller hears why.
		if err := s.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return n, fmt.Errorf("dead letter %d is superseded (%s) but could not be deleted: %w", seq, by, err)
		}
		return n, fmt.Errorf("%w: dead letter %d not sent, its group's later notification was delivered since (%s); removed from the DLQ", ErrSuperseded, seq, by)
	}
	if err := rearm(ctx, b, n, msgID); err != nil {
		return nil, fmt.Errorf("replay %d: %w", seq, err)
	}
	data, err := proto.Marshal(n)
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%s.replay.%d", n.IdempotencyKey, seq)
	if _, err := b.Publish(ctx, bus.Message{Subject: bus.NotifySubject(n.Tenant, n.Receiver), ID: id, Data: data, Shard: bus.NotificationShard(n)}); err != nil {
		return nil, fmt.Errorf("replay %d: %w", seq, err)
	}
	// Published first, deleted second: a crash in between leaves the letter
	// in the DLQ, and replaying it again is deduplicated by its msg id.
	if err := s.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return n, fmt.Errorf("replayed %d but could not delete it: %w", seq, err)
	}
	return n, nil
}

// rearm readies the delivery that a dead letter of one integration parked
// (deadLetterFailed), so that its replay sends it: the parked mark, which
// every delivery of the notification skips, becomes a dead mark, which it
// sends and which still lets the group's next notification go ahead. Such
// a letter's msg id is the integration's notification-log key, ".dlq." and
// the NOTIFY sequence; a whole notification's starts with its idempotency
// key alone, and its integrations already hold dead marks.
func rearm(ctx context.Context, b *bus.Bus, n *klaxonv1.Notification, msgID string) error {
	i := strings.LastIndex(msgID, ".dlq.")
	if i < 0 || !strings.HasPrefix(msgID[:i], n.IdempotencyKey+".") {
		return nil
	}
	key := msgID[:i]
	kv, err := b.JS.KeyValue(ctx, bus.BucketNotifyLog)
	if err != nil {
		return fmt.Errorf("notification log: %w", err)
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil // expired: the replay sends it anyway
	}
	if err != nil {
		return fmt.Errorf("read notification log: %w", err)
	}
	if !parkedMark(e.Value()) {
		return nil // re-armed by a replay that did not get to delete the letter, or sent since
	}
	// Update, not Put: a send recorded meanwhile is not turned into a resend.
	mark := giveUpMark(deadMarkPrefix, time.Now(), markPrevious(e.Value()))
	if _, err := kv.Update(ctx, key, mark, e.Revision()); err != nil {
		return fmt.Errorf("re-arm %s in the notification log: %w", key, err)
	}
	return nil
}

// superseded says, for the dead letter of n with msg id msgID, by what
// (integration, when) every delivery it would make was superseded: the
// group's later notification was delivered there after it was given up on
// (Pipeline.supersede). "" when one of them is still to send, or the
// notification log no longer knows (its records expired): then it is sent.
// The letter of one integration (rearm) has that delivery alone; a whole
// notification's has those its integrations gave up on.
func superseded(ctx context.Context, b *bus.Bus, n *klaxonv1.Notification, msgID string) (string, error) {
	kv, err := b.JS.KeyValue(ctx, bus.BucketNotifyLog)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return "", nil // no notifier ever ran: nothing was delivered since
	}
	if err != nil {
		return "", fmt.Errorf("notification log: %w", err)
	}
	var keys []string
	one := false // the letter of one integration
	if i := strings.LastIndex(msgID, ".dlq."); i >= 0 && strings.HasPrefix(msgID[:i], n.IdempotencyKey+".") {
		keys, one = []string{msgID[:i]}, true
	} else {
		l, err := kv.ListKeysFiltered(ctx, n.IdempotencyKey+".*")
		if err != nil {
			return "", fmt.Errorf("read notification log: %w", err)
		}
		for k := range l.Keys() {
			if !slices.Contains(keys, k) { // a busy bucket may list a key twice
				keys = append(keys, k)
			}
		}
	}
	var by []string
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read notification log: %w", err)
		}
		switch v := e.Value(); {
		case supersededMark(v):
			at := ""
			if f := strings.Fields(string(v)); len(f) > 1 {
				at = " at " + f[1]
			}
			by = append(by, strings.TrimPrefix(k, n.IdempotencyKey+".")+at)
		case deadMark(v):
			return "", nil // still to send there
		case parkedMark(v) && one:
			// Still to send there (rearm makes it a dead mark). A parked
			// integration of a whole letter is sent by its own letter, not
			// by this one's replay.
			return "", nil
		}
	}
	return strings.Join(by, ", "), nil
}

// dlqDepth reads the number of dead letters from the stream info.
func dlqDepth(ctx context.Context, b *bus.Bus) (uint64, error) {
	s, err := b.JS.Stream(ctx, bus.StreamDLQ)
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().State.Msgs, nil
}
