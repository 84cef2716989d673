package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TTLBucket is a KV bucket whose keys each carry their own TTL, refreshed on
// every write, so idle keys (a window nobody touched for longer than the
// window) disappear by themselves instead of growing the bucket forever.
type TTLBucket struct {
	jetstream.KeyValue
	name   string
	js     jetstream.JetStream
	stream jetstream.Stream // the bucket's stream (createOverMarker)
}

// ErrConflict means the key changed since it was read (another replica wrote
// it): read again and retry.
var ErrConflict = errors.New("kv: revision conflict")

// MaxKeyBytes bounds a KV key. The key goes into the subject of every read
// and write, and a subject past the server's control line (4 KiB) makes it
// close the connection, for good: every consumer, lease and write on it
// then fails. A key is built from names, ids and hashes; only a caller's
// input (a silence id) could be that long.
const MaxKeyBytes = 1024

// ErrKeyTooLong: a key longer than MaxKeyBytes; nothing was sent.
var ErrKeyTooLong = errors.New("kv: key too long")

func checkKey(key string) error {
	if len(key) > MaxKeyBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrKeyTooLong, len(key), MaxKeyBytes)
	}
	return nil
}

// TTLKV opens (creating if needed) a bucket with per-key TTLs enabled.
func (b *Bus) TTLKV(ctx context.Context, bucket string) (*TTLBucket, error) {
	var kv jetstream.KeyValue
	err := b.retry(ctx, "kv bucket "+bucket, func(ctx context.Context) (err error) {
		kv, err = b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:   bucket,
			History:  1,
			Storage:  jetstream.FileStorage,
			Replicas: b.cfg.Replicas,
			// Enables per-message TTLs on the bucket's stream; markers of
			// expired keys are kept briefly so watchers see the expiry.
			LimitMarkerTTL: time.Minute,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	var st jetstream.Stream
	err = b.retry(ctx, "kv stream "+bucket, func(ctx context.Context) (err error) {
		st, err = b.JS.Stream(ctx, "KV_"+bucket)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &TTLBucket{KeyValue: kv, name: bucket, js: b.JS, stream: st}, nil
}

// Write stores value under key if the key is still at revision rev (0 = must
// not exist), with the key expiring after ttl unless written again.
func (t *TTLBucket) Write(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	newRev, err := t.put(ctx, key, value, rev, ttl)
	if errors.Is(err, ErrConflict) && rev == 0 {
		return t.createOverMarker(ctx, key, value, ttl)
	}
	return newRev, err
}

// subject is key's subject in the bucket's stream.
func (t *TTLBucket) subject(key string) string { return "$KV." + t.name + "." + key }

// put is one conditional write: the new revision, or ErrConflict.
func (t *TTLBucket) put(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	ack, err := t.js.PublishMsg(ctx, &nats.Msg{Subject: t.subject(key), Data: value}, writeOpts(rev, ttl)...)
	if err != nil {
		return 0, kvError(err)
	}
	return ack.Sequence, nil
}

// createOverMarker retries a create (revision 0) that conflicted: a key that
// was deleted, or expired, leaves a marker as its subject's last message
// (a delete's for good, an expiry's for LimitMarkerTTL), and a write
// expecting no message conflicts with it though Read finds no key. If the
// last message is such a marker, the create is written expecting it; if it
// is a value, the conflict stands. (Only on a conflict: a create of a key
// never written costs no extra round trip.)
func (t *TTLBucket) createOverMarker(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	m, err := t.stream.GetLastMsgForSubject(ctx, t.subject(key))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		m = nil // the marker went meanwhile: expect nothing
	case err != nil:
		return 0, err
	case !isMarker(m.Header):
		return 0, ErrConflict
	}
	var rev uint64
	if m != nil {
		rev = m.Sequence
	}
	return t.put(ctx, key, value, rev, ttl)
}

// isMarker: a KV delete or purge, or the server's marker of a removed or
// expired message (as the KV client reads them, for ErrKeyDeleted).
func isMarker(h nats.Header) bool {
	return h.Get("KV-Operation") != "" || h.Get(jetstream.MarkerReasonHeader) != ""
}

// KVWrite is one conditional write of WriteMany: Value under Key if the key
// is still at revision Rev (0 = must not exist), expiring after TTL (0: never).
type KVWrite struct {
	Key   string
	Value []byte
	Rev   uint64
	TTL   time.Duration
}

// WriteMany performs the writes pipelined (see pipelined), so n writes cost
// about one round trip instead of n. It returns each write's new revision and
// error (an ErrConflict where the revision did not match); writes to
// different keys are independent, so some may succeed while others fail.
func (t *TTLBucket) WriteMany(ctx context.Context, ws []KVWrite) ([]uint64, []error) {
	revs := make([]uint64, len(ws))
	errs := make([]error, len(ws))
	send := make([]int, 0, len(ws)) // the writes whose keys may be sent
	for i, w := range ws {
		if errs[i] = checkKey(w.Key); errs[i] == nil {
			send = append(send, i)
		}
	}
	pipelined(ctx, t.js, len(send),
		func(k int) (*nats.Msg, []jetstream.PublishOpt) {
			w := ws[send[k]]
			return &nats.Msg{Subject: t.subject(w.Key), Data: w.Value}, writeOpts(w.Rev, w.TTL)
		},
		func(k int, ack *jetstream.PubAck, err error) {
			i := send[k]
			if err != nil {
				errs[i] = kvError(err)
				return
			}
			revs[i] = ack.Sequence
		})
	for i, w := range ws {
		if w.Rev == 0 && errors.Is(errs[i], ErrConflict) {
			revs[i], errs[i] = t.createOverMarker(ctx, w.Key, w.Value, w.TTL)
		}
	}
	return revs, errs
}

func writeOpts(rev uint64, ttl time.Duration) []jetstream.PublishOpt {
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(rev)}
	if ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(max(ttl, time.Second)))
	}
	return opts
}

func kvError(err error) error {
	var apiErr *jetstream.APIError
	// 10164 ("wrong last sequence", constant form) is what a replicated
	// stream answers while another write to the key is in flight: a conflict
	// as well (as nats.go's own KV maps it).
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return ErrConflict
	}
	return err
}

// Read returns the value and revision of key (nil, 0 if absent).
func (t *TTLBucket) Read(ctx context.Context, key string) ([]byte, uint64, error) {
	if err := checkKey(key); err != nil {
		return nil, 0, err
	}
	e, err := t.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return e.Value(), e.Revision(), nil
}
