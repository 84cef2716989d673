// Package peers holds fakes of the services Klaxon notifies, for end-to-end
// tests against real klaxon processes: a Slack workspace (slack-go's
// slacktest with chat.update), a real SMTP server with STARTTLS, a PagerDuty
// Events API v2 endpoint and a gate in front of any HTTP target. Each fake
// enforces its peer's wire contract and can hold a request in flight, so a
// test can kill the notifier at a chosen point of a delivery.
package peers

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Hold is one request a peer keeps in flight until Release, or until its
// client goes away.
type Hold struct {
	arrived  chan struct{}
	released chan struct{}
	once     sync.Once
}

func newHold() *Hold {
	return &Hold{arrived: make(chan struct{}), released: make(chan struct{})}
}

// Wait blocks until a request reached the hold, failing the test after
// timeout.
func (h *Hold) Wait(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-h.arrived:
	case <-time.After(timeout):
		t.Fatalf("no request reached the hold within %s", timeout)
	}
}

// Release lets the held request go on.
func (h *Hold) Release() { h.once.Do(func() { close(h.released) }) }

// block marks the request arrived and waits for Release or ctx (the
// client's connection). It reports whether the request was released.
func (h *Hold) block(ctx context.Context) bool {
	close(h.arrived)
	select {
	case <-h.released:
		return true
	case <-ctx.Done():
		return false
	}
}

// holds hands out at most one pending Hold to the next request.
type holds struct {
	mu   sync.Mutex
	next *Hold
}

func (hs *holds) arm() *Hold {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.next = newHold()
	return hs.next
}

func (hs *holds) take() *Hold {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	h := hs.next
	hs.next = nil
	return h
}
