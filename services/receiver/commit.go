package receiver

import (
	"context"
	"fmt"
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
// wait, and the first of them then publishes them as one batch message (as
// many as fit bus.MaxBatchBytes; the rest wait for the next). Under 32
// senders each posting one alert, JetStream stores, and the engine receives
// and acknowledges, one message per group instead of one per alert; a lone
// request is published at once, exactly as it would be alone (a single alert
// under its own id, so a retried POST is still a duplicate). A retried
// request that lands in a group is stored again; that is harmless for
// alerts (see result.batch).
type groupCommit struct {
	publish func(ctx context.Context, envs []*klaxonv1.Envelope) ([]bus.Result, []int, error)
	// observe is told the number of requests in each publish.
	observe func(requests int)

	mu     sync.Mutex
	queues map[string]*commitQueue // by INGEST subject
}

type commitQueue struct {
	busy    bool          // a publish for this subject is in flight
	waiting []*commitWait // in arrival order
}

type commitWait struct {
	envs []*klaxonv1.Envelope
	size int // bytes in a batch message (bus.BatchSize of each envelope)
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

// store publishes envs (all of one subject, size bytes in a batch message)
// with whatever requests are waiting beside them, and returns this request's
// share of the outcome. A waiting request does not give up on its context
// (its group may be being published): the wait is bounded by two publishes,
// the one in flight and then its own, each bounded by publishTimeout, so at
// most 20 s; a sender that gave up earlier retries, and its alerts, stored
// twice, are merged.
func (g *groupCommit) store(subject string, envs []*klaxonv1.Envelope, size int) (stored, dups int, err error) {
	w := &commitWait{envs: envs, size: size, done: make(chan commitOutcome, 1)}
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

// lead publishes the next group of q (which begins with the leader's own
// request), answers every request in it, and hands the lead to the first
// request still waiting: each request publishes at most one group, so none
// waits for a publish after its own. If the publish panics, the group is
// answered with an error and the lead still passes on, so the subject is not
// left busy for ever; the panic goes on to the leader's HTTP server.
func (g *groupCommit) lead(subject string, q *commitQueue) {
	g.mu.Lock()
	group := q.take()
	g.mu.Unlock()

	defer g.handOff(subject, q)
	defer func() {
		if r := recover(); r != nil {
			for _, w := range group {
				select {
				case w.done <- commitOutcome{err: fmt.Errorf("publish panicked: %v", r)}:
				default: // answered before the panic
				}
			}
			panic(r)
		}
	}()
	g.flush(group)
}

// take removes the next group from q.waiting: the first request, and those
// after it that fit in one batch message with it. Called with g.mu held.
func (q *commitQueue) take() []*commitWait {
	n, size := 1, q.waiting[0].size
	for n < len(q.waiting) && size+q.waiting[n].size <= bus.MaxBatchBytes {
		size += q.waiting[n].size
		n++
	}
	group := q.waiting[:n:n]
	q.waiting = q.waiting[n:]
	return group
}

// handOff gives the lead to the first waiting request, or marks q idle.
func (g *groupCommit) handOff(subject string, q *commitQueue) {
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

// flush publishes the envelopes of group's requests and answers each. An
// envelope that an earlier request of the group also carries (the same
// alert from both replicas of an HA pair) is published once and counts as a
// duplicate for the later request, as JetStream would count it had the two
// been published apart.
func (g *groupCommit) flush(group []*commitWait) {
	envs := group[0].envs
	owner := make([]int, 0, len(envs)) // owner[i]: the request envs[i] came in
	dups := make([]int, len(group))
	if len(group) == 1 {
		for range envs {
			owner = append(owner, 0)
		}
	} else {
		envs = envs[:0:0]
		seen := map[string]bool{}
		for r, w := range group {
			for _, e := range w.envs {
				if seen[e.Id] {
					dups[r]++
					continue
				}
				seen[e.Id] = true
				envs = append(envs, e)
				owner = append(owner, r)
			}
		}
	}
	if g.observe != nil {
		g.observe(len(group))
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	res, counts, err := g.publish(ctx, envs)
	cancel()
	if err == nil {
		err = checkCounts(res, counts, len(envs))
	}
	if err != nil {
		for _, w := range group {
			w.done <- commitOutcome{err: err}
		}
		return
	}
	// Message i holds the next counts[i] envelopes, in order; each envelope
	// of a duplicate message is a duplicate for the request it came in.
	next := 0
	for i, r := range res {
		for range counts[i] {
			if r.Duplicate {
				dups[owner[next]]++
			}
			next++
		}
	}
	for r, w := range group {
		w.done <- commitOutcome{stored: len(w.envs) - dups[r], dups: dups[r]}
	}
}

// checkCounts: a result per message, and the messages hold every envelope.
func checkCounts(res []bus.Result, counts []int, envs int) error {
	n := 0
	for _, c := range counts {
		n += c
	}
	if len(res) != len(counts) || n != envs {
		return fmt.Errorf("publish of %d envelopes answered %d results for %d messages holding %d envelopes", envs, len(res), len(counts), n)
	}
	return nil
}
