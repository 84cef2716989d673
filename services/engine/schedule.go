package engine

import (
	"container/heap"
	"time"
)

// The dispatcher's indexes, so that the work per alert does not grow with
// the number of groups (an alert storm of 100k distinct groups at 1,000
// alerts/s must not scan every group on every tick):
//
//   - a min-heap of flush times: Tick pops the groups that are due, NextDue
//     peeks. Entries are lazy: a group whose timer moved, that emptied or
//     that was destroyed leaves a stale entry behind, skipped when it
//     surfaces; each group has at most one live entry (group.sched).
//   - per tenant, the groups holding a pending notification by its
//     idempotency key (tenantState.pending), for Ack and for republishing
//     after a restart.

type dueEntry struct {
	at time.Time
	ts *tenantState
	g  *group
}

type dueHeap []dueEntry

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	if h[i].ts.name != h[j].ts.name {
		return h[i].ts.name < h[j].ts.name
	}
	return h[i].g.ID < h[j].g.ID
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)   { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = dueEntry{}
	*h = old[:len(old)-1]
	return e
}

// schedule makes sure g has a heap entry at its current flush time. Call it
// whenever g.Next may have changed or g gained alerts. Callers hold d.mu.
func (d *Dispatcher) schedule(ts *tenantState, g *group) {
	if g.Alerts.Len() == 0 || (!g.sched.IsZero() && g.sched.Equal(g.Next)) {
		return
	}
	g.sched = g.Next
	heap.Push(&d.due, dueEntry{at: g.Next, ts: ts, g: g})
}

// live reports whether e still describes a group that waits for a flush at
// e.at.
func (e dueEntry) live() bool {
	return e.ts.groups[e.g.ID] == e.g && e.g.Alerts.Len() > 0 && e.at.Equal(e.g.Next)
}

// popStale drops stale entries from the top of the heap, rescheduling a
// live group whose entry it dropped.
func (d *Dispatcher) popStale() {
	for len(d.due) > 0 && !d.due[0].live() {
		e := heap.Pop(&d.due).(dueEntry)
		if e.at.Equal(e.g.sched) {
			e.g.sched = time.Time{}
			if e.ts.groups[e.g.ID] == e.g {
				d.schedule(e.ts, e.g)
			}
		}
	}
}

// popDue removes and returns the groups due at now, in due order.
func (d *Dispatcher) popDue(now time.Time) []*group {
	var due []*group
	for {
		d.popStale()
		if len(d.due) == 0 || d.due[0].at.After(now) {
			return due
		}
		e := heap.Pop(&d.due).(dueEntry)
		e.g.sched = time.Time{}
		due = append(due, e.g)
	}
}
