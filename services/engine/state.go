package engine

import (
	"context"
	"errors"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
)

// Alert is an alert as a group holds it.
type Alert struct {
	Fingerprint  string  `json:"fp"`
	Labels       Labels  `json:"labels"`
	Annotations  Labels  `json:"annotations"`
	StartsAt     Instant `json:"startsAt"`
	EndsAt       Instant `json:"endsAt"` // none: fires until resolved (see fromProto)
	GeneratorURL string  `json:"generatorURL,omitempty"`
	UpdatedAt    Instant `json:"updatedAt"`
	// Timeout: EndsAt was set by resolve_timeout, not by the sender.
	Timeout bool `json:"timeout,omitempty"`
	// Seq is the INGEST stream sequence of the message that last updated
	// the alert (0: not known, as in rule unit tests): an older message
	// redelivered after a crash does not undo a newer one.
	Seq uint64 `json:"seq,omitempty"`
}

// ResolvedAt says whether the alert is resolved at t (Alertmanager's rule).
func (a *Alert) ResolvedAt(t time.Time) bool { return !a.EndsAt.IsZero() && !a.EndsAt.After(At(t)) }

// end is EndsAt, none being after every instant.
func (a *Alert) end() Instant {
	if a.EndsAt.IsZero() {
		return math.MaxInt64
	}
	return a.EndsAt
}

// LabelSet of the alert.
func (a *Alert) LabelSet() model.LabelSet { return a.Labels.LabelSet() }

func (a *Alert) proto(now time.Time) *klaxonv1.Alert {
	p := &klaxonv1.Alert{Labels: a.Labels.Map(), Annotations: a.Annotations.Map(), StartsAt: timestamppb.New(a.StartsAt.Time()),
		GeneratorUrl: a.GeneratorURL, Fingerprint: a.Fingerprint, Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING}
	if a.ResolvedAt(now) {
		p.EndsAt = timestamppb.New(a.EndsAt.Time())
		p.Status = klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED
	}
	return p
}

// NflogEntry is what was last notified for a group: Alertmanager's
// notification log entry (firing and resolved fingerprints, when).
type NflogEntry struct {
	Firing   []string  `json:"firing"`
	Resolved []string  `json:"resolved"`
	At       time.Time `json:"at"`
	// Sent is the last notification published for the group: its
	// idempotency key and creation time (the next one's previous_key/_at).
	Sent   string     `json:"sent,omitempty"`
	SentAt *time.Time `json:"sentAt,omitempty"`
}

// GroupState is one aggregation group, persisted as one KV value, so a
// group's alerts, timer and notification log change together atomically.
type GroupState struct {
	Tenant  string `json:"tenant"`
	RouteID string `json:"route"`
	// RouteKey is the route's Alertmanager key (Route.Key): with the group
	// labels it makes the group key. ID and Key are computed, not held: one
	// string per group is most of a storm of single-alert groups (they are
	// still stored, for readers; see encodeGroup).
	RouteKey string   `json:"routeKey,omitempty"`
	Receiver string   `json:"receiver"`
	Labels   Labels   `json:"labels"`
	Alerts   AlertSet `json:"alerts"`
	// Next is when the group flushes next.
	Next    Instant     `json:"next"`
	Flushed bool        `json:"flushed,omitempty"`
	Nflog   *NflogEntry `json:"nflog,omitempty"`
	// Pending is a notification decided and logged but not yet known to be
	// published: it is (re)published, with the same id, until it is.
	Pending []byte `json:"pending,omitempty"`

	// rev is the KV revision the group was last read or written at
	// (KVStore; not stored): the next write is conditional on it.
	rev uint64
}

// ID is the group's id, unique per tenant: route id and group labels.
func (g *GroupState) ID() string { return groupID(g.RouteID, g.Labels) }

// Key is the Alertmanager group key: route key and group labels.
func (g *GroupState) Key() string { return groupID(g.RouteKey, g.Labels) }

// groupID joins a route's id or key and group labels (rendered as
// Alertmanager renders a label set).
func groupID(route string, labels Labels) string {
	var buf [256]byte // on the stack: the string is the one allocation
	return string(appendGroupID(buf[:0], route, labels))
}

func appendGroupID(b []byte, route string, labels Labels) []byte {
	return labels.appendString(append(append(b, route...), ':'))
}

// ErrLostOwnership means another replica changed the state: this one must
// stop acting on it and reload.
var ErrLostOwnership = errors.New("engine state changed by another replica")

// Store persists groups. Implementations: MemStore (tests, rule unit
// tests) and KVStore (JetStream KV, the server).
type Store interface {
	// Load returns every group of every tenant.
	Load(ctx context.Context) ([]*GroupState, error)
	// Put writes a group; ErrLostOwnership if someone else wrote it since
	// this store last read or wrote it. A Committer may defer the write.
	Put(ctx context.Context, g *GroupState) error
	// Delete removes a group (ErrLostOwnership as for Put).
	Delete(ctx context.Context, g *GroupState) error
}

// Committer is a Store that defers Put and Delete until Commit, which
// writes them all at once (KVStore).
type Committer interface {
	Commit(ctx context.Context) error
}

// MemStore keeps groups in memory.
type MemStore struct {
	mu     sync.Mutex
	groups map[string]*GroupState
}

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore { return &MemStore{groups: map[string]*GroupState{}} }

// Load implements Store.
func (m *MemStore) Load(context.Context) ([]*GroupState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*GroupState, 0, len(m.groups))
	for _, g := range m.groups {
		out = append(out, cloneGroup(g))
	}
	SortGroups(out)
	return out, nil
}

// Put implements Store.
func (m *MemStore) Put(_ context.Context, g *GroupState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.groups[g.kvKey().storeKey()] = cloneGroup(g)
	return nil
}

// Delete implements Store.
func (m *MemStore) Delete(_ context.Context, g *GroupState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.groups, g.kvKey().storeKey())
	return nil
}

// SortGroups orders groups by group key, computing each key once.
func SortGroups(gs []*GroupState) {
	keys := make(map[*GroupState]string, len(gs))
	for _, g := range gs {
		keys[g] = g.Key()
	}
	sort.Slice(gs, func(i, j int) bool { return keys[gs[i]] < keys[gs[j]] })
}

func cloneGroup(g *GroupState) *GroupState {
	c := *g
	c.Alerts = AlertSet{}
	for _, a := range g.Alerts.All() {
		ac := *a
		c.Alerts.Set(&ac)
	}
	if g.Nflog != nil {
		n := *g.Nflog
		c.Nflog = &n
	}
	return &c
}
