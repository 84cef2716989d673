package notify

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// errBreakerOpen: the integration failed just now and is being given time
// (or a single delivery is probing it); the notification waits, and the
// wait is not one of its attempts.
var errBreakerOpen = errors.New("integration failing; waiting before trying it again")

// breaker is one integration's circuit breaker (per tenant, receiver and
// integration, in this process). Deliveries share 16 workers: without it a
// webhook that times out held a worker for Attempts × AttemptTimeout per
// notification, and its receiver's groups, spread over every worker, held
// them all, so every tenant's notifications waited behind it. After a
// failed attempt the integration is left alone for a backoff; then one
// delivery probes it while the others keep waiting; a success closes the
// breaker. State is in memory: it only decides when to try, and another
// replica learns the same by trying.
type breaker struct {
	mu    sync.Mutex
	fails int       // consecutive failed attempts; 0: closed
	until time.Time // open: no attempt before this
	// probe is the delivery trying the integration while it is open (its
	// token; nil: none): it alone retries, the others wait.
	probe *probeToken
	// last is the latest failure, which the waits name: a notification
	// dead-lettered after waiting said only "integration failing", reason
	// other, and not the 500 it was waiting on.
	last error
}

// probeToken identifies one delivery through one integration.
type probeToken struct{ _ byte }

// allow says whether delivery t may try the integration now; if not, how
// long to wait. Closed, every delivery may; open, once its backoff has
// passed, one: the probe.
func (b *breaker) allow(now time.Time, t *probeToken, probeWait time.Duration) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.fails == 0 || b.probe == t:
		return true, 0
	case now.Before(b.until):
		return false, b.until.Sub(now)
	case b.probe != nil:
		return false, probeWait
	}
	b.probe = t
	return true, 0
}

// waitError is the error of a delivery allow turned away for wait: it
// wraps errBreakerOpen and carries the latest failure's reason and text.
func (b *breaker) waitError(wait time.Duration) error {
	b.mu.Lock()
	last := b.last
	b.mu.Unlock()
	if last == nil {
		return &Error{Reason: ReasonOther, Err: errBreakerOpen, RetryAfter: wait}
	}
	return &Error{Reason: ReasonOf(last), Err: fmt.Errorf("%w (its last attempt: %v)", errBreakerOpen, last), RetryAfter: wait}
}

// failure records a failed attempt of t and opens the breaker for
// backoff(fails). It returns whether t may retry in-process: only the
// probe does, the first delivery to fail while none was.
func (b *breaker) failure(now time.Time, t *probeToken, backoff func(fails int) time.Duration, err error) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails++
	b.last = err
	b.until = now.Add(backoff(b.fails))
	if b.probe == nil {
		b.probe = t
	}
	return b.probe == t
}

// success closes the breaker: the integration answered.
func (b *breaker) success() {
	b.mu.Lock()
	b.fails, b.probe = 0, nil
	b.mu.Unlock()
}

// done ends t's delivery: if it was the probe, another may now be.
func (b *breaker) done(t *probeToken) {
	b.mu.Lock()
	if b.probe == t {
		b.probe = nil
	}
	b.mu.Unlock()
}

// waitingOnly reports whether every failure in err (Deliver's, one per
// integration) is a wait, an open breaker's or the rate limit's: no attempt
// was made.
func waitingOnly(err error) bool {
	if err == nil {
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !waitingOnly(e) {
				return false
			}
		}
		return len(j.Unwrap()) > 0
	}
	return errors.Is(err, errBreakerOpen) || errors.Is(err, errRateLimited)
}

// maxBreakers bounds the breakers kept in memory (one per integration).
const maxBreakers = 10000

func (p *Pipeline) breaker(tenant, receiver string, in Integration) *breaker {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := breakerKey{tenant, receiver, in.Name, in.Index}
	b := p.breakers[k]
	if b == nil {
		if len(p.breakers) >= maxBreakers {
			clear(p.breakers) // receivers removed since: start over rather than grow
		}
		b = &breaker{}
		p.breakers[k] = b
	}
	return b
}

type breakerKey struct {
	tenant, receiver, integration string
	index                         int
}
