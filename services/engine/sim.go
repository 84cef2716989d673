package engine

import (
	"context"
	"time"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/engine/silence"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// Sim runs a Dispatcher on a simulated clock with in-memory state, for
// `klaxonctl rules test` and for tests: Ingest feeds alerts at given
// instants, Advance flushes every group due up to an instant, each at its
// own due time, and returns the notifications (CreatedAt = simulated time).
// It satisfies ruletest.Simulator.
type Sim struct {
	D        *Dispatcher
	Silences *silence.Store
	tenant   string
	now      time.Time
	// held: notifications of the flushes an Ingest ran (everything due
	// before its instant), returned by the next Advance.
	held []*klaxonv1.Notification
}

// NewSim builds a simulator for one tenant's rules with its clock at start.
func NewSim(t *ruleset.Tenant, start time.Time) (*Sim, error) {
	s := &Sim{tenant: t.Name, now: start}
	s.Silences = silence.NewMemory(silence.WithClock(func() time.Time { return s.now }))
	s.D = NewDispatcher(DispatcherConfig{
		Rules: func(name string) *ruleset.Tenant {
			if name == t.Name {
				return t
			}
			return nil
		},
		Silences: s.Silences,
	})
	return s, nil
}

// Ingest puts env's alert (events are ignored) in at instant at; the
// envelope's tenant is overridden by the simulator's, its source counts
// (see Origin.Source). It first flushes the groups due before at (their
// notifications are returned by the next Advance), not those due at at:
// alerts ingested at one instant are routed together, as the engine
// routes a batch before it flushes (the two burn-rate alerts an SLO
// raises in one evaluation make one notification).
func (s *Sim) Ingest(at time.Time, env *klaxonv1.Envelope) {
	s.held = append(s.held, s.advance(at, false)...)
	if a := env.GetAlert(); a != nil {
		_ = s.D.ReceiveFrom(context.Background(), s.tenant, a, Origin{Source: env.GetSource()}, at)
	}
}

// Advance moves the clock to `to`, flushing groups in due order.
func (s *Sim) Advance(to time.Time) []*klaxonv1.Notification {
	out := append(s.held, s.advance(to, true)...)
	s.held = nil
	return out
}

// advance flushes the groups due before to (and at to if inclusive).
func (s *Sim) advance(to time.Time, inclusive bool) []*klaxonv1.Notification {
	ctx := context.Background()
	var out []*klaxonv1.Notification
	for range 1_000_000 { // bounded: every flush moves its group's timer forward
		next, ok := s.D.NextDue()
		if !ok || next.After(to) || (!inclusive && next.Equal(to)) {
			break
		}
		if next.After(s.now) {
			s.now = next
		}
		ns, _ := s.D.Tick(ctx, next)
		_ = s.D.Ack(ctx, ns...)
		out = append(out, ns...)
	}
	if to.After(s.now) {
		s.now = to
	}
	return out
}
