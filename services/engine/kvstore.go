package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/fastjson"
)

// groupPrefix starts the KV key of every group: g.<tenant token>.<hash>.
const groupPrefix = "g."

// tombstoneTTL is how long a destroyed group's empty value stays: while it
// does, its revision keeps fencing writes to the key by a deposed replica.
const tombstoneTTL = 24 * time.Hour

// tombstoneSlack is how long past tombstoneTTL the store remembers a
// tombstone's revision: the server expires it on its own clock, and a
// little late. Forgotten while still there, the tombstone would make a
// group coming back under its key look written by another replica.
const tombstoneSlack = time.Hour

// goneSweep is how often Commit drops the revisions of tombstones that have
// expired.
const goneSweep = time.Hour

// KVStore keeps groups in the JetStream KV bucket bus.BucketGroups, one
// value per group. Every write is conditional on the revision this store
// last saw for the key, so a replica that lost its lease and still writes
// fails with ErrLostOwnership instead of overwriting the new owner's state.
// Destroyed groups are written as empty values (tombstones) rather than
// deleted, so their revision stays known.
//
// Groups are JSON (goccy/go-json: byte for byte what encoding/json writes,
// in half the time both ways; a storm's commits and a restart with 100k
// groups spend much of theirs on it).
//
// Writes are group-committed: Put and Delete only mark the group, Commit
// writes every marked group once, all pipelined. An alert storm that
// touches a group several times in one batch (received, flushed) costs one
// write per group and about one round trip per batch.
type KVStore struct {
	kv *bus.TTLBucket

	mu    sync.Mutex
	dirty map[kvKey]*GroupState // nil: write a tombstone
	// A live group carries its own revision (GroupState.rev): no map of
	// 100k revisions beside 100k groups. Only keys without a live group
	// are looked up: gone holds those this store deleted (the revision of
	// the group until its tombstone is written, then the tombstone's);
	// tombs, by KV key, the tombstones Load found (at loaded). Both
	// forget a tombstone once it has expired (forgetExpired): with
	// group_by ['...'], a group is destroyed for every alert resolved, for
	// as long as the replica leads.
	gone   map[kvKey]goneRev
	tombs  map[string]uint64
	loaded time.Time
	swept  time.Time // gone's last sweep
	// now is the clock tombstones expire on (the server's: time.Now);
	// tombTTL is tombstoneTTL unless a test shortens it.
	now     func() time.Time
	tombTTL time.Duration

	// MaxValueBytes, if set, is the largest value a write can carry (the
	// server's max_payload). A group encoded larger is not written: its
	// write would fail every time, and with it every commit, so that every
	// batch would be redelivered for ever and routing would stop. It keeps
	// its last stored value (its alerts and timers here stay as they are)
	// and is written again with its next change; Log says so. The
	// dispatcher's MaxGroupBytes keeps groups well below this: only
	// alerts grown larger since they were taken in can get here.
	MaxValueBytes int
	Log           *slog.Logger
}

// goneRev is the revision of a key this store deleted, and since when.
type goneRev struct {
	rev uint64
	at  time.Time
}

// kvKey identifies a group's KV key without holding the key's string: a
// store of 100k groups would otherwise keep 100k 40-byte strings just to
// look revisions up. The tenant string is the group's own, shared.
type kvKey struct {
	tenant string
	hash   [12]byte
}

func keyOf(tenant string, groupID []byte) kvKey {
	h := sha256.Sum256(groupID)
	k := kvKey{tenant: tenant}
	copy(k.hash[:], h[:])
	return k
}

// kvKey is keyOf its tenant and id, the id rendered on the stack: a
// group's key is hashed on every Put and Delete.
func (g *GroupState) kvKey() kvKey {
	var buf [256]byte
	return keyOf(g.Tenant, appendGroupID(buf[:0], g.RouteID, g.Labels))
}

// String is the KV key: groupPrefix, tenant token, hash of the group id.
func (k kvKey) String() string { return groupPrefix + k.storeKey() }

func (k kvKey) storeKey() string { return tenantToken(k.tenant) + "." + hex.EncodeToString(k.hash[:]) }

// NewKVStore opens the groups bucket.
func NewKVStore(ctx context.Context, b *bus.Bus) (*KVStore, error) {
	kv, err := b.TTLKV(ctx, bus.BucketGroups)
	if err != nil {
		return nil, fmt.Errorf("groups bucket: %w", err)
	}
	return &KVStore{kv: kv, dirty: map[kvKey]*GroupState{}, gone: map[kvKey]goneRev{}, tombs: map[string]uint64{},
		now: time.Now, tombTTL: tombstoneTTL}, nil
}

// Load implements Store.
func (s *KVStore) Load(ctx context.Context) ([]*GroupState, error) {
	tombs := map[string]uint64{}
	var out []*GroupState
	err := watchGroups(ctx, s.kv, groupPrefix+">", func(key string, rev uint64, g *GroupState, bad error) {
		if bad != nil {
			// A value no version of Klaxon wrote (a hand edit, a newer
			// format after a downgrade): failing Load for it would stop
			// routing for every tenant, retried for ever. It is skipped and
			// its revision kept as a tombstone's, so a group coming back
			// under the key overwrites it.
			if s.Log != nil {
				s.Log.Error("stored group cannot be decoded; skipped (its alerts come back when they are sent again)", "key", key, "err", bad)
			}
			tombs[key] = rev
			return
		}
		if g == nil {
			tombs[key] = rev
			return
		}
		g.rev = rev
		out = append(out, g)
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.tombs, s.loaded = tombs, s.now()
	s.gone = map[kvKey]goneRev{}
	s.dirty = map[kvKey]*GroupState{}
	s.mu.Unlock()
	return out, nil
}

// Put implements Store: g is written, as it is then, by the next Commit.
func (s *KVStore) Put(_ context.Context, g *GroupState) error {
	s.mu.Lock()
	s.dirty[g.kvKey()] = g
	s.mu.Unlock()
	return nil
}

// Delete implements Store: the next Commit writes the group's tombstone.
func (s *KVStore) Delete(_ context.Context, g *GroupState) error {
	k := g.kvKey()
	s.mu.Lock()
	s.dirty[k] = nil
	if g.rev != 0 {
		s.gone[k] = goneRev{g.rev, s.now()}
	}
	s.mu.Unlock()
	return nil
}

// Commit implements Committer. A group whose write failed stays marked, so
// the next Commit writes it again; a revision conflict is ErrLostOwnership.
// The caller must keep the groups from changing while Commit runs (the
// Dispatcher holds its lock).
//
// A write expecting a tombstone's revision conflicts once the tombstone has
// expired, with nothing left to fence: it is written again as a create,
// which succeeds if the key holds no value (bus.TTLBucket writes a create
// over the marker an expiry leaves), and conflicts if another replica
// wrote one.
func (s *KVStore) Commit(ctx context.Context) error {
	s.mu.Lock()
	now := s.now()
	s.forgetExpired(now)
	ws := make([]bus.KVWrite, 0, len(s.dirty))
	keys := make([]kvKey, 0, len(s.dirty))
	groups := make([]*GroupState, 0, len(s.dirty))
	var overTomb []bool // ws[i].Rev is a tombstone's
	for k, g := range s.dirty {
		key := k.String()
		var rev uint64
		if g != nil {
			rev = g.rev
		}
		tomb := rev == 0
		if tomb {
			if gr, ok := s.gone[k]; ok {
				rev = gr.rev
			} else {
				rev = s.tombs[key]
			}
		}
		w := bus.KVWrite{Key: key, Rev: rev}
		if g == nil {
			w.TTL = s.tombTTL
		} else {
			data, err := encodeGroup(g)
			if err != nil {
				s.mu.Unlock()
				return fmt.Errorf("encode group %s: %w", key, err)
			}
			if s.MaxValueBytes > 0 && len(data) > s.MaxValueBytes {
				delete(s.dirty, k)
				if s.Log != nil {
					s.Log.Error("group too large to store; it keeps its last stored value until it changes", "group", g.Key(),
						"alerts", g.Alerts.Len(), "bytes", len(data), "max", s.MaxValueBytes)
				}
				continue
			}
			w.Value = data
		}
		ws = append(ws, w)
		keys = append(keys, k)
		groups = append(groups, g)
		overTomb = append(overTomb, tomb && rev != 0)
	}
	s.mu.Unlock()
	if len(ws) == 0 {
		return nil
	}
	revs, errs := s.kv.WriteMany(ctx, ws)
	// The tombstone we knew expired: nothing to fence any more. A
	// tombstone, or a group created again under a destroyed one's key,
	// that conflicted is retried as a create, which conflicts again only
	// if the key holds a value: another replica's.
	var again []bus.KVWrite
	var at []int
	for i, w := range ws {
		if errors.Is(errs[i], bus.ErrConflict) && w.Rev != 0 && (w.Value == nil || overTomb[i]) {
			w.Rev = 0
			again = append(again, w)
			at = append(at, i)
		}
	}
	if len(again) > 0 {
		r2, e2 := s.kv.WriteMany(ctx, again)
		for j, i := range at {
			revs[i], errs[i] = r2[j], e2[j]
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var failed []error
	for i, w := range ws {
		switch err := errs[i]; {
		case errors.Is(err, bus.ErrConflict):
			failed = append(failed, fmt.Errorf("%w: %s", ErrLostOwnership, w.Key))
		case err != nil:
			failed = append(failed, fmt.Errorf("store group %s: %w", w.Key, err))
		default:
			if g := groups[i]; g != nil {
				g.rev = revs[i]
				delete(s.gone, keys[i])
			} else {
				s.gone[keys[i]] = goneRev{revs[i], now}
			}
			delete(s.dirty, keys[i])
			delete(s.tombs, w.Key)
		}
	}
	return errors.Join(failed...)
}

// forgetExpired drops, at most every goneSweep, the revisions of the
// tombstones that have expired by now: those this store wrote more than
// tombTTL (and tombstoneSlack) ago, and, that long after Load, those it
// found. A key still to be written keeps its revision. Callers hold s.mu.
func (s *KVStore) forgetExpired(now time.Time) {
	if now.Sub(s.swept) < goneSweep && !now.Before(s.swept) {
		return
	}
	s.swept = now
	horizon := s.tombTTL + tombstoneSlack
	for k, gr := range s.gone {
		if _, dirty := s.dirty[k]; !dirty && now.Sub(gr.at) > horizon {
			delete(s.gone, k)
		}
	}
	if len(s.tombs) > 0 && now.Sub(s.loaded) > horizon {
		keep := map[string]uint64{}
		for k := range s.dirty {
			if rev, ok := s.tombs[k.String()]; ok {
				keep[k.String()] = rev
			}
		}
		s.tombs = keep
	}
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
	// A value that does not decode is left out: the engine's Load logs it,
	// and one bad group must not make the API answer nothing.
	err := watchGroups(ctx, r.kv, filter, func(_ string, _ uint64, g *GroupState, _ error) {
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

// watchGroups calls f for the current value of every key matching filter:
// g nil for a tombstone, bad for a value that does not decode.
func watchGroups(ctx context.Context, kv jetstream.KeyValue, filter string, f func(key string, rev uint64, g *GroupState, bad error)) error {
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
				f(e.Key(), e.Revision(), nil, nil)
				continue
			}
			var g GroupState
			if err := decodeGroup(e.Value(), &g); err != nil {
				f(e.Key(), e.Revision(), nil, fmt.Errorf("decode group %s: %w", e.Key(), err))
				continue
			}
			f(e.Key(), e.Revision(), &g, nil)
		}
	}
}

// storedGroup is a group as stored (encodeGroup writes it): its fields,
// and its id and key.
type storedGroup struct {
	ID  string `json:"id"`
	Key string `json:"key"`
	groupFields
}

// groupFields is GroupState without its methods.
type groupFields GroupState

func decodeGroup(data []byte, g *GroupState) error {
	var sg storedGroup
	if err := fastjson.Unmarshal(data, &sg); err != nil {
		return err
	}
	*g = GroupState(sg.groupFields)
	if g.RouteKey == "" {
		// Stored before RouteKey: the key is the route key and the labels.
		g.RouteKey = strings.TrimSuffix(sg.Key, ":"+g.Labels.String())
	}
	return nil
}
