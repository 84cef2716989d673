// Package silence stores Alertmanager-style silences per tenant: create,
// expire, list, and a fast "does any active silence mute these labels"
// lookup for the engine. Silences live in a Backend (JetStream KV in the
// server, memory in tests and `klaxonctl rules test`); expired silences are
// kept for a retention period, like Alertmanager's --data.retention.
package silence

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"
)

// DefaultRetention is how long an expired silence is kept (Alertmanager's
// default --data.retention).
const DefaultRetention = 120 * time.Hour

// MaxBytes bounds a silence as stored (Mimir's max_silence_size_bytes is
// the same idea): its comment and matchers come from the caller, and one as
// large as a request body (1 MiB) did not fit a message of an external NATS
// server (1 MiB by default) once encoded, so it failed with a 500 instead of
// a 400.
const MaxBytes = 64 << 10

// Sentinel errors.
var (
	ErrNotFound = errors.New("silence not found")
	ErrInvalid  = errors.New("invalid silence")
	ErrExpired  = errors.New("silence already expired")
	// ErrLimit: SetLimited would exceed the tenant's max_silences.
	ErrLimit = errors.New("exceeded maximum number of silences")
)

// Matcher is one matcher in Alertmanager API v2 form.
type Matcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual bool   `json:"isEqual"`
}

// Silence mutes every alert its matchers all match between StartsAt and
// EndsAt.
type Silence struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Matchers  []Matcher `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
}

// States, as Alertmanager names them.
const (
	StatePending = "pending"
	StateActive  = "active"
	StateExpired = "expired"
)

// State of s at now.
func (s *Silence) State(now time.Time) string {
	switch {
	case !now.Before(s.EndsAt):
		return StateExpired
	case now.Before(s.StartsAt):
		return StatePending
	}
	return StateActive
}

// Compile turns the matchers into Alertmanager label matchers.
func (s *Silence) Compile() (labels.Matchers, error) {
	if len(s.Matchers) == 0 {
		return nil, fmt.Errorf("%w: no matchers", ErrInvalid)
	}
	out := make(labels.Matchers, 0, len(s.Matchers))
	allEmpty := true
	for _, m := range s.Matchers {
		t := labels.MatchEqual
		switch {
		case m.IsRegex && m.IsEqual:
			t = labels.MatchRegexp
		case m.IsRegex:
			t = labels.MatchNotRegexp
		case !m.IsEqual:
			t = labels.MatchNotEqual
		}
		lm, err := labels.NewMatcher(t, m.Name, m.Value)
		if err != nil {
			return nil, fmt.Errorf("%w: matcher %s: %w", ErrInvalid, m.Name, err)
		}
		if !lm.Matches("") {
			allEmpty = false
		}
		out = append(out, lm)
	}
	// Like Alertmanager: a silence whose matchers all match the empty string
	// would silence every alert.
	if allEmpty {
		return nil, fmt.Errorf("%w: at least one matcher must not match the empty string", ErrInvalid)
	}
	return out, nil
}

// Backend persists silences.
type Backend interface {
	// Put stores s, to be forgotten after ttl (0 = never).
	Put(ctx context.Context, s *Silence, ttl time.Duration) error
	Get(ctx context.Context, tenant, id string) (*Silence, error)
	List(ctx context.Context, tenant string) ([]*Silence, error)
}

// Watcher is a Backend that also reports changes made by other processes.
type Watcher interface {
	Watch(ctx context.Context, f func(*Silence)) error
}

// Store is the silence store of every tenant.
type Store struct {
	be        Backend
	now       func() time.Time
	retention time.Duration

	mu      sync.RWMutex
	cache   map[string]*tenantSet // tenant -> silences, for Mutes
	watched bool                  // Load started the watch already

	limitMu sync.Mutex // SetLimited's count-then-set, for every API of this process
}

// Option configures a Store.
type Option func(*Store)

// WithClock injects the clock.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithRetention sets how long expired silences are kept.
func WithRetention(d time.Duration) Option { return func(s *Store) { s.retention = d } }

// New builds a store over be.
func New(be Backend, opts ...Option) *Store {
	s := &Store{be: be, now: time.Now, retention: DefaultRetention, cache: map[string]*tenantSet{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// NewMemory is a store in memory (tests, rule unit tests).
func NewMemory(opts ...Option) *Store { return New(NewMemBackend(), opts...) }

// Load fills the match cache with every tenant's silences and, if the
// backend is a Watcher, keeps it current until ctx ends (silences created by
// the API in another process). It returns once the initial state is loaded;
// later calls return at once.
func (s *Store) Load(ctx context.Context) error {
	w, ok := s.be.(Watcher)
	s.mu.Lock()
	started := s.watched
	s.watched = true
	s.mu.Unlock()
	if !ok || started {
		return nil
	}
	loaded := make(chan error, 1)
	go func() {
		loaded <- w.Watch(ctx, func(sil *Silence) {
			if sil == nil { // end of initial values
				select {
				case loaded <- nil:
				default:
				}
				return
			}
			s.cacheSet(sil)
		})
	}()
	select {
	case err := <-loaded:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Set creates a silence, or replaces the one with s.ID. A new silence gets an
// id; a silence without StartsAt starts now. As Alertmanager's canUpdate:
// an active silence with the same matchers and start, or a pending one with
// the same matchers and a start not in the past, is updated in place; any
// other change to a live silence expires it and creates a new one, and an
// expired silence's id makes a new silence (the expired one is kept).
func (s *Store) Set(ctx context.Context, sil *Silence) (*Silence, error) {
	now := s.now()
	c := *sil
	if c.StartsAt.IsZero() {
		c.StartsAt = now
	}
	if _, err := c.Compile(); err != nil {
		return nil, err
	}
	if !c.EndsAt.After(c.StartsAt) {
		return nil, fmt.Errorf("%w: endsAt must be after startsAt", ErrInvalid)
	}
	if !c.EndsAt.After(now) {
		return nil, fmt.Errorf("%w: endsAt is in the past", ErrInvalid)
	}
	if data, err := json.Marshal(&c); err != nil || len(data) > MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes encoded (comment, matchers, createdBy), at most %d", ErrInvalid, len(data), MaxBytes)
	}
	inPlace := false
	if c.ID != "" {
		old, err := s.be.Get(ctx, c.Tenant, c.ID)
		if err != nil {
			return nil, err
		}
		switch st := old.State(now); {
		case st == StateActive && sameMatchers(old.Matchers, c.Matchers) && old.StartsAt.Unix() == c.StartsAt.Unix():
			inPlace = true
			// An update in place (Alertmanager's canUpdate): its start, to
			// the second (amtool and Grafana send milliseconds), stays
			// the original one. Compared to the nanosecond, every edit
			// replaced the silence with a new id, and an update in place
			// moved its start to now.
			c.StartsAt = old.StartsAt
		case st == StatePending && sameMatchers(old.Matchers, c.Matchers) && !c.StartsAt.Before(now):
			inPlace = true // a pending silence may move its start, not into the past
		case st == StateExpired:
			// Alertmanager's canUpdate: an expired silence is never
			// changed; its id makes a new silence, and the old one's
			// author, comment and times stay in its history.
			c.ID = ""
		default:
			// Other matchers or another start: a new silence, the old
			// one expired, so its history stays.
			if _, err := s.Expire(ctx, c.Tenant, c.ID); err != nil {
				return nil, err
			}
			c.ID = ""
		}
	}
	if c.ID == "" {
		c.ID = newID()
	}
	if !inPlace && c.StartsAt.Before(now) {
		c.StartsAt = now
	}
	c.UpdatedAt = now
	if err := s.put(ctx, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// SetLimited is Set for a tenant allowed at most limit active or pending
// silences (tenants.yml max_silences, Alertmanager's --silences.max-silences;
// limit <= 0: none). Updating a live silence does not add one; a new
// silence, or reviving an expired id, does, and is refused with ErrLimit. An
// unknown id is left to Set (ErrNotFound). The count and the write are atomic
// within this process; two processes writing at once may overshoot by one.
func (s *Store) SetLimited(ctx context.Context, sil *Silence, limit int) (*Silence, error) {
	if limit <= 0 {
		return s.Set(ctx, sil)
	}
	s.limitMu.Lock()
	defer s.limitMu.Unlock()
	all, err := s.List(ctx, sil.Tenant)
	if err != nil {
		return nil, err
	}
	n, known, now := 0, false, s.now()
	for _, o := range all {
		live := o.State(now) != StateExpired
		if o.ID == sil.ID {
			if live {
				return s.Set(ctx, sil) // an update, not one more
			}
			known = true
		}
		if live {
			n++
		}
	}
	if sil.ID == "" || known {
		if n >= limit {
			return nil, fmt.Errorf("%w: %d (limit: %d) active or pending silences in tenant %s (max_silences)", ErrLimit, n, limit, sil.Tenant)
		}
	}
	return s.Set(ctx, sil)
}

// Expire ends the silence now.
func (s *Store) Expire(ctx context.Context, tenant, id string) (*Silence, error) {
	sil, err := s.be.Get(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	now := s.now()
	switch sil.State(now) {
	case StateExpired:
		return nil, fmt.Errorf("%w: %s", ErrExpired, id)
	case StatePending:
		sil.StartsAt = now
	}
	sil.EndsAt = now
	sil.UpdatedAt = now
	if err := s.put(ctx, sil); err != nil {
		return nil, err
	}
	return sil, nil
}

// Get returns one silence.
func (s *Store) Get(ctx context.Context, tenant, id string) (*Silence, error) {
	sil, err := s.be.Get(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if s.gone(sil) {
		return nil, ErrNotFound
	}
	return sil, nil
}

// List returns the tenant's silences (expired ones within retention), newest
// first.
func (s *Store) List(ctx context.Context, tenant string) ([]*Silence, error) {
	all, err := s.be.List(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, sil := range all {
		if !s.gone(sil) {
			out = append(out, sil)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UpdatedAt.After(out[j].UpdatedAt) })
	return out, nil
}

// Sort orders silences as Alertmanager lists them: active ones (ending
// soonest first), then pending ones (starting soonest first), then expired
// ones (ended most recently first); ties keep their order.
func Sort(ss []*Silence, now time.Time) {
	rank := map[string]int{StateActive: 0, StatePending: 1, StateExpired: 2}
	sort.SliceStable(ss, func(i, j int) bool {
		si, sj := ss[i].State(now), ss[j].State(now)
		if si != sj {
			return rank[si] < rank[sj]
		}
		switch si {
		case StateActive:
			return ss[i].EndsAt.Before(ss[j].EndsAt)
		case StatePending:
			return ss[i].StartsAt.Before(ss[j].StartsAt)
		}
		return ss[i].EndsAt.After(ss[j].EndsAt)
	})
}

// Mutes returns the ids of the tenant's active silences that match lset.
func (s *Store) Mutes(tenant string, lset model.LabelSet) []string {
	s.mu.RLock()
	ts := s.cache[tenant]
	s.mu.RUnlock()
	if ts == nil {
		return nil
	}
	return ts.mutes(lset, s.now())
}

func (s *Store) gone(sil *Silence) bool {
	return s.now().After(sil.EndsAt.Add(s.retention))
}

func (s *Store) put(ctx context.Context, sil *Silence) error {
	ttl := sil.EndsAt.Add(s.retention).Sub(s.now())
	if err := s.be.Put(ctx, sil, ttl); err != nil {
		return fmt.Errorf("store silence %s: %w", sil.ID, err)
	}
	s.cacheSet(sil)
	return nil
}

func (s *Store) cacheSet(sil *Silence) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.cache[sil.Tenant]
	if ts == nil {
		ts = newTenantSet()
		s.cache[sil.Tenant] = ts
	}
	ts.set(sil)
}

func sameMatchers(a, b []Matcher) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
