package fakes

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Recorder keeps accepted requests of type T and wakes waiters.
type Recorder[T any] struct {
	mu    sync.Mutex
	items []T
	ch    chan struct{}
}

func (r *Recorder[T]) add(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, v)
	if r.ch != nil {
		close(r.ch)
		r.ch = nil
	}
}

// All returns a copy of what was recorded.
func (r *Recorder[T]) All() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.items...)
}

// Len is the number recorded.
func (r *Recorder[T]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}

// WaitFor blocks until at least n items are recorded, failing the test after
// timeout. It wakes on each new item instead of polling.
func (r *Recorder[T]) WaitFor(t testing.TB, n int, timeout time.Duration) []T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		r.mu.Lock()
		if len(r.items) >= n {
			out := append([]T(nil), r.items...)
			r.mu.Unlock()
			return out
		}
		if r.ch == nil {
			r.ch = make(chan struct{})
		}
		ch := r.ch
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waited %s for %d items, have %d", timeout, n, r.Len())
			return nil
		}
	}
}
