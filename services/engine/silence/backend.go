package silence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klaxon-sh/klaxon/services/bus"
)

// MemBackend keeps silences in memory.
type MemBackend struct {
	mu   sync.Mutex
	sils map[string]map[string]Silence
}

// NewMemBackend returns an empty in-memory backend.
func NewMemBackend() *MemBackend { return &MemBackend{sils: map[string]map[string]Silence{}} }

// Put implements Backend; the store filters by retention, so ttl is unused.
func (m *MemBackend) Put(_ context.Context, s *Silence, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sils[s.Tenant] == nil {
		m.sils[s.Tenant] = map[string]Silence{}
	}
	m.sils[s.Tenant][s.ID] = *s
	return nil
}

// Get implements Backend.
func (m *MemBackend) Get(_ context.Context, tenant, id string) (*Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sils[tenant][id]
	if !ok {
		return nil, ErrNotFound
	}
	return &s, nil
}

// List implements Backend.
func (m *MemBackend) List(_ context.Context, tenant string) ([]*Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Silence, 0, len(m.sils[tenant]))
	for _, s := range m.sils[tenant] {
		out = append(out, &s)
	}
	return out, nil
}

// KVBackend keeps silences in a JetStream KV bucket (bus.BucketSilences),
// one key per silence, <tenant token>.<id>, each expiring at the end of its
// retention.
type KVBackend struct {
	kv *bus.TTLBucket
}

// NewKVBackend opens the silences bucket.
func NewKVBackend(ctx context.Context, b *bus.Bus) (*KVBackend, error) {
	kv, err := b.TTLKV(ctx, bus.BucketSilences)
	if err != nil {
		return nil, fmt.Errorf("silences bucket: %w", err)
	}
	return &KVBackend{kv: kv}, nil
}

// NewKV is a Store over the KV bucket.
func NewKV(ctx context.Context, b *bus.Bus, opts ...Option) (*Store, error) {
	be, err := NewKVBackend(ctx, b)
	if err != nil {
		return nil, err
	}
	return New(be, opts...), nil
}

func kvKey(tenant, id string) string { return bus.Token(tenant) + "." + bus.Token(id) }

// Put implements Backend.
func (k *KVBackend) Put(ctx context.Context, s *Silence, ttl time.Duration) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	key := kvKey(s.Tenant, s.ID)
	for range 5 { // last writer wins; the revision only guards the TTL write
		_, rev, err := k.kv.Read(ctx, key)
		if err != nil {
			return err
		}
		if _, err = k.kv.Write(ctx, key, data, rev, ttl); !errors.Is(err, bus.ErrConflict) {
			return err
		}
	}
	return bus.ErrConflict
}

// Get implements Backend.
func (k *KVBackend) Get(ctx context.Context, tenant, id string) (*Silence, error) {
	key := kvKey(tenant, id)
	if len(key) > bus.MaxKeyBytes {
		// No silence has such an id (ours are UUIDs): a caller's input.
		return nil, ErrNotFound
	}
	data, _, err := k.kv.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, ErrNotFound
	}
	var s Silence
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode silence %s: %w", id, err)
	}
	return &s, nil
}

// List implements Backend.
func (k *KVBackend) List(ctx context.Context, tenant string) ([]*Silence, error) {
	var out []*Silence
	err := k.watch(ctx, bus.Token(tenant)+".*", true, func(s *Silence) { out = append(out, s) })
	return out, err
}

// Watch implements Watcher: f gets every silence, then nil once the initial
// values are delivered, then every change until ctx ends.
func (k *KVBackend) Watch(ctx context.Context, f func(*Silence)) error {
	return k.watch(ctx, ">", false, f)
}

func (k *KVBackend) watch(ctx context.Context, filter string, initialOnly bool, f func(*Silence)) error {
	w, err := k.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("watch silences: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				if initialOnly {
					return nil
				}
				f(nil)
				continue
			}
			var s Silence
			if json.Unmarshal(e.Value(), &s) == nil {
				f(&s)
			}
		}
	}
}
