package ruleset

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Holder keeps the last good rule set. A reload that fails validation leaves
// the previous set in place and records why.
type Holder struct {
	dir     string
	cur     atomic.Pointer[Set]
	mu      sync.Mutex
	status  ReloadStatus
	version atomic.Uint64
	hooks   []func(*Set)
	opts    []Option
}

// ReloadStatus is the outcome of the last reload.
type ReloadStatus struct {
	At      time.Time
	Success bool
	Err     error
	Version uint64
}

// NewHolder loads dir once; it fails if the first load fails (there is no
// previous set to keep).
func NewHolder(dir string, opts ...Option) (*Holder, error) {
	h := &Holder{dir: dir, opts: opts}
	if err := h.Reload(); err != nil {
		return nil, err
	}
	return h, nil
}

// Dir is the rules directory.
func (h *Holder) Dir() string { return h.dir }

// Get returns the current rule set (never nil after NewHolder succeeded).
func (h *Holder) Get() *Set { return h.cur.Load() }

// Version increments on every successful reload; caches key on it.
func (h *Holder) Version() uint64 { return h.version.Load() }

// Tenant returns a tenant's rules, or nil.
func (h *Holder) Tenant(name string) *Tenant {
	if s := h.cur.Load(); s != nil {
		return s.Tenants[name]
	}
	return nil
}

// OnReload registers f to run after each successful reload.
func (h *Holder) OnReload(f func(*Set)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hooks = append(h.hooks, f)
}

// Reload loads the directory again; on error the previous set stays.
func (h *Holder) Reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	set, err := Load(h.dir, h.opts...)
	h.status = ReloadStatus{At: time.Now(), Success: err == nil, Err: err}
	if err != nil {
		h.status.Version = h.version.Load()
		return fmt.Errorf("rules in %s are invalid, keeping the last good ones: %w", h.dir, err)
	}
	h.cur.Store(set)
	h.status.Version = h.version.Add(1)
	for _, f := range h.hooks {
		f(set)
	}
	return nil
}

// Status returns the outcome of the last reload.
func (h *Holder) Status() ReloadStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status
}

// NewStaticHolder wraps an already loaded set (tests, simulations).
func NewStaticHolder(set *Set) *Holder {
	h := &Holder{}
	h.cur.Store(set)
	h.version.Store(1)
	h.status = ReloadStatus{Success: true, Version: 1}
	return h
}
