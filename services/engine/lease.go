package engine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klaxon-sh/klaxon/services/bus"
)

// leaseKey is the KV key of the engine's leader lease.
const leaseKey = "lease.engine"

// lease is a leader lease in KV: a key with a TTL that its holder rewrites
// (at the revision it last wrote) every ttl/3. When the holder dies the key
// expires and another replica's conditional create succeeds. A holder that
// cannot renew within 2/3 of the TTL considers itself deposed before anyone
// else can acquire the key, so two replicas never act as leader at once
// (revision-checked group writes catch the rest).
type lease struct {
	kv    *bus.TTLBucket
	js    jetstream.JetStream
	owner string
	ttl   time.Duration

	rev uint64
	// renewed: unix nanoseconds of the last renewal's start; valid() is
	// asked from the consumer's goroutine.
	renewed atomic.Int64
}

// tryAcquire takes the lease if it is free.
func (l *lease) tryAcquire(ctx context.Context) (bool, error) {
	val, rev, err := l.kv.Read(ctx, leaseKey)
	if err != nil {
		return false, err
	}
	switch {
	case val == nil:
		// Absent or expired: an expiry leaves a marker, so create at the
		// subject's last sequence rather than at 0.
		if rev, err = l.lastSeq(ctx); err != nil {
			return false, err
		}
	case string(val) != "" && string(val) != l.owner:
		return false, nil
	}
	start := time.Now()
	nrev, err := l.kv.Write(ctx, leaseKey, []byte(l.owner), rev, l.ttl)
	if errors.Is(err, bus.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	l.rev = nrev
	l.renewed.Store(start.UnixNano())
	return true, nil
}

// renew extends the lease; false means it is lost.
func (l *lease) renew(ctx context.Context) (bool, error) {
	start := time.Now()
	nrev, err := l.kv.Write(ctx, leaseKey, []byte(l.owner), l.rev, l.ttl)
	if errors.Is(err, bus.ErrConflict) {
		return false, nil
	}
	if err != nil {
		// Transient: still ours until the safety margin runs out.
		return l.valid(), err
	}
	l.rev = nrev
	l.renewed.Store(start.UnixNano())
	return true, nil
}

// valid: the lease was renewed recently enough that nobody else can hold it.
func (l *lease) valid() bool {
	return time.Since(time.Unix(0, l.renewed.Load())) < l.ttl*2/3
}

// release hands the lease over at once (graceful shutdown).
func (l *lease) release(ctx context.Context) {
	_, _ = l.kv.Write(ctx, leaseKey, []byte(""), l.rev, l.ttl)
}

func (l *lease) lastSeq(ctx context.Context) (uint64, error) {
	st, err := l.js.Stream(ctx, "KV_"+bus.BucketGroups)
	if err != nil {
		return 0, fmt.Errorf("groups stream: %w", err)
	}
	m, err := st.GetLastMsgForSubject(ctx, "$KV."+bus.BucketGroups+"."+leaseKey)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}
