package receiver

import (
	"context"
	"sync"
	"time"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
)

// maxCoalesceBytes: a request whose envelopes encode to more than this is
// published on its own; it already makes a batch message worth its write.
const maxCoalesceBytes = 64 << 10

// publishTimeout bounds one publish to JetStream.
const publishTimeout = 10 * time.Second

// groupCommit stores the alerts of concurrent requests together: while one
// publish is in flight for an INGEST subject, the requests that arrive for it
// wait, and the first of them then publishes all of them as one batch
// message. Under 32 senders each posting one alert, JetStream stores, and the
// engine receives and acknowledges, one message per group instead of one per
// alert; a lone request is published at once, exactly as it would be alone
// (a single alert under its own id, so a retried POST is still a duplicate).
// A retried request that lands in another group is stored twice; that is
// harmless for alerts (see result.batch).
type groupCommit struct {
	publish func(ctx context.Context, envs []*klaxonv1.Envelope) ([]bus.Result, []int, error)
	// observe is told the number of requests in each publish.
	observe func(requests int)

	mu     sync.Mutex
	queues map[string]*commitQueue // by INGEST subject
}

type commitQueue struct {
	busy    bool          // a publish for this subject is in flight
	waiting []*commitWait // the next group, in arrival order
}

type commitWait struct {
	envs []*klaxonv1.Envelope
	// done receives lead (this request publishes the next group) or the
	// outcome; it is buffered so the sender never blocks.
	done chan commitOutcome
}

type commitOutcome struct {
	lead   bool
	stored int
	dups   int
	err    error
}

// store publishes envs (all of one subject) with whatever requests are
// waiting beside them, and returns this request's share of the outcome.
// A waiting request does not give up on its context: the group it is in
// may be published at any moment, and the wait is bounded by two publishes
// (the one in flight, then its own), each bounded by publishTimeout.
func (g *groupCommit) store(subject string, envs []*klaxonv1.Envelope) (stored, dups int, err error) {
	w := &commitWait{envs: envs, done: make(chan commitOutcome, 1)}
	g.mu.Lock()
	q := g.queues[subject]
	if q == nil {
		q = &commitQueue{}
		g.queues[subject] = q
	}
	q.waiting = append(q.waiting, w)
	lead := !q.busy
	q.busy = true
	g.mu.Unlock()
	if !lead {
		out := <-w.done
		if !out.lead {
			return out.stored, out.dups, out.err
		}
	}
	g.lead(subject, q)
	out := <-w.done
	return out.stored, out.dups, out.err
}

// lead publishes the waiting group of q (which holds the leader's own
// request), answers every request in it, and hands the next group, if any,
// to its first request: each request publishes at most one group, so no
// answer waits for a publish it is not part of.
func (g *groupCommit) lead(subject string, q *commitQueue) {
	g.mu.Lock()
	group := q.waiting
	q.waiting = nil
	g.mu.Unlock()

	g.flush(group)

	g.mu.Lock()
	if len(q.waiting) == 0 {
		q.busy = false
		delete(g.queues, subject)
		g.mu.Unlock()
		return
	}
	next := q.waiting[0]
	g.mu.Unlock()
	next.done <- commitOutcome{lead: true}
}

// flush publishes the envelopes of group's requests and answers each.
func (g *groupCommit) flush(group []*commitWait) {
	envs := group[0].envs
	if len(group) > 1 {
		n := 0
		for _, w := range group {
			n += len(w.envs)
		}
		envs = make([]*klaxonv1.Envelope, 0, n)
		for _, w := range group {
			envs = append(envs, w.envs...)
		}
	}
	if g.observe != nil {
		g.observe(len(group))
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	res, counts, err := g.publish(ctx, envs)
	cancel()
	if err != nil {
		for _, w := range group {
			w.done <- commitOutcome{err: err}
		}
		return
	}
	// Message i holds the next counts[i] envelopes, in order; a duplicate
	// message makes each of its envelopes a duplicate of the request it
	// came in.
	dup := make([]bool, 0, len(envs))
	for i, r := range res {
		for range counts[i] {
			dup = append(dup, r.Duplicate)
		}
	}
	off := 0
	for _, w := range group {
		d := 0
		for _, isDup := range dup[off : off+len(w.envs)] {
			if isDup {
				d++
			}
		}
		off += len(w.envs)
		w.done <- commitOutcome{stored: len(w.envs) - d, dups: d}
	}
}
