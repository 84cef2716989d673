package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klaxon-sh/klaxon/services/bus"
)

// groupPrefix starts the KV key of every group: g.<tenant token>.<hash>.
const groupPrefix = "g."

// tombstoneTTL is how long a destroyed group's empty value stays: while it
// does, its revision keeps fencing writes to the key by a deposed replica.
const tombstoneTTL = 24 * time.Hour

// KVStore keeps groups in the JetStream KV bucket bus.BucketGroups, one
// value per group. Every write is conditional on the revision this store
// last saw for the key, so a replica that lost its lease and still writes
// fails with ErrLostOwnership instead of overwriting the new owner's state.
// Destroyed groups are written as empty values (tombstones) rather than
// deleted, so their revision stays known.
type KVStore struct {
	kv *bus.TTLBucket

	mu   sync.Mutex
	revs map[string]uint64
}

// NewKVStore opens the groups bucket.
func NewKVStore(ctx context.Context, b *bus.Bus) (*KVStore, error) {
	kv, err := b.TTLKV(ctx, bus.BucketGroups)
	if err != nil {
		return nil, fmt.Errorf("groups bucket: %w", err)
	}
	return &KVStore{kv: kv, revs: map[string]uint64{}}, nil
}

// Load implements Store.
func (s *KVStore) Load(ctx context.Context) ([]*GroupState, error) {
	revs := map[string]uint64{}
	var out []*GroupState
	err := watchGroups(ctx, s.kv, groupPrefix+">", func(key string, rev uint64, g *GroupState) {
		revs[key] = rev
		if g != nil {
			out = append(out, g)
		}
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.revs = revs
	s.mu.Unlock()
	return out, nil
}

// Put implements Store.
func (s *KVStore) Put(ctx context.Context, g *GroupState) error {
	data, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return s.write(ctx, groupPrefix+StoreKey(g.Tenant, g.ID), data, 0)
}

// Delete implements Store.
func (s *KVStore) Delete(ctx context.Context, tenant, groupID string) error {
	return s.write(ctx, groupPrefix+StoreKey(tenant, groupID), nil, tombstoneTTL)
}

func (s *KVStore) write(ctx context.Context, key string, data []byte, ttl time.Duration) error {
	s.mu.Lock()
	rev := s.revs[key]
	s.mu.Unlock()
	nrev, err := s.kv.Write(ctx, key, data, rev, ttl)
	if errors.Is(err, bus.ErrConflict) && rev != 0 && data == nil {
		// The tombstone we knew expired: nothing to fence any more.
		nrev, err = s.kv.Write(ctx, key, data, 0, ttl)
	}
	if errors.Is(err, bus.ErrConflict) {
		return fmt.Errorf("%w: %s", ErrLostOwnership, key)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.revs[key] = nrev
	s.mu.Unlock()
	return nil
}

// GroupReader reads stored groups from any process: the view the
// Alertmanager API and the admin API serve.
type GroupReader struct{ kv jetstream.KeyValue }

// NewGroupReader opens the groups bucket for reading.
func NewGroupReader(ctx context.Context, b *bus.Bus) (*GroupReader, error) {
	kv, err := b.TTLKV(ctx, bus.BucketGroups)
	if err != nil {
		return nil, fmt.Errorf("groups bucket: %w", err)
	}
	return &GroupReader{kv: kv}, nil
}

// Groups returns the stored groups of one tenant ("" = all).
func (r *GroupReader) Groups(ctx context.Context, tenant string) ([]*GroupState, error) {
	filter := groupPrefix + ">"
	if tenant != "" {
		filter = groupPrefix + tenantToken(tenant) + ".*"
	}
	var out []*GroupState
	err := watchGroups(ctx, r.kv, filter, func(_ string, _ uint64, g *GroupState) {
		if g != nil && (tenant == "" || g.Tenant == tenant) {
			out = append(out, g)
		}
	})
	return out, err
}

// ReadGroups opens the bucket and returns the stored groups of one tenant.
func ReadGroups(ctx context.Context, b *bus.Bus, tenant string) ([]*GroupState, error) {
	r, err := NewGroupReader(ctx, b)
	if err != nil {
		return nil, err
	}
	return r.Groups(ctx, tenant)
}

// watchGroups calls f for the current value of every key matching filter.
func watchGroups(ctx context.Context, kv jetstream.KeyValue, filter string, f func(key string, rev uint64, g *GroupState)) error {
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("watch groups: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok || e == nil {
				return nil
			}
			if !strings.HasPrefix(e.Key(), groupPrefix) {
				continue
			}
			if len(e.Value()) == 0 {
				f(e.Key(), e.Revision(), nil)
				continue
			}
			var g GroupState
			if err := json.Unmarshal(e.Value(), &g); err != nil {
				return fmt.Errorf("decode group %s: %w", e.Key(), err)
			}
			f(e.Key(), e.Revision(), &g)
		}
	}
}
