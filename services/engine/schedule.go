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

// dueEntry is 16 bytes (one per held group): the flush time in Unix
// nanoseconds and the group, whose tenant is looked up when it surfaces.
type dueEntry struct {
	at int64
	g  *group
}

type dueHeap []dueEntry

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	if h[i].g.Tenant != h[j].g.Tenant {
		return h[i].g.Tenant < h[j].g.Tenant
	}
	// Then by route and packed labels: deterministic, and renders nothing.
	if h[i].g.RouteID != h[j].g.RouteID {
		return h[i].g.RouteID < h[j].g.RouteID
	}
	return h[i].g.Labels.s < h[j].g.Labels.s
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
func (d *Dispatcher) schedule(g *group) {
	next := int64(g.Next)
	if g.Alerts.Len() == 0 || (g.sched != 0 && g.sched == next) {
		return
	}
	g.sched = next
	heap.Push(&d.due, dueEntry{at: next, g: g})
}

// held reports whether g is still its tenant's group (not regrouped or
// destroyed).
func (d *Dispatcher) held(g *group) bool {
	ts := d.tenants[g.Tenant]
	return ts != nil && ts.groups[g.ref()] == g
}

// live reports whether e still describes a group that waits for a flush at
// e.at.
func (d *Dispatcher) live(e dueEntry) bool {
	return d.held(e.g) && e.g.Alerts.Len() > 0 && e.at == int64(e.g.Next)
}

// popStale drops stale entries from the top of the heap, rescheduling a
// live group whose entry it dropped.
func (d *Dispatcher) popStale() {
	for len(d.due) > 0 && !d.live(d.due[0]) {
		e := heap.Pop(&d.due).(dueEntry)
		if e.at == e.g.sched {
			e.g.sched = 0
			if d.held(e.g) {
				d.schedule(e.g)
			}
		}
	}
}

// popDue removes and returns the groups due at now, in due order.
func (d *Dispatcher) popDue(now time.Time) []*group {
	var due []*group
	for {
		d.popStale()
		if len(d.due) == 0 || d.due[0].at > now.UnixNano() {
			return due
		}
		e := heap.Pop(&d.due).(dueEntry)
		e.g.sched = 0
		due = append(due, e.g)
	}
}
