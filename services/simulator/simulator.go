// Package simulator runs a tenant's rules through Klaxon's real components
// on a simulated clock, for `klaxonctl rules test`: window policies,
// heartbeats and SLO burn rates (services/policy, services/heartbeat,
// services/slo/runner) on an in-process JetStream, their derived alerts fed,
// with every other alert, to the engine's own dispatcher (engine.Sim), so a
// rule test answers what the live engine would.
package simulator

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/engine"
	"github.com/klaxon-sh/klaxon/services/heartbeat"
	"github.com/klaxon-sh/klaxon/services/policy"
	"github.com/klaxon-sh/klaxon/services/ruleset"
	"github.com/klaxon-sh/klaxon/services/ruleset/ruletest"
	slorunner "github.com/klaxon-sh/klaxon/services/slo/runner"
)

// Step is how often the simulated clock ticks the derived-alert components
// between inputs.
const Step = time.Minute

// Sim is one test's simulation.
type Sim struct {
	route   ruletest.Simulator
	bus     *bus.Bus
	dir     string
	now     time.Time
	mu      sync.Mutex
	policy  *policy.Evaluator
	hb      *heartbeat.Monitor
	slo     *slorunner.Runner
	lastSeq uint64
	ticked  time.Time
	derived bool
}

var (
	openMu sync.Mutex
	open   []*Sim
)

// New is a ruletest.NewSimulator. Each simulation has its own in-process
// JetStream; CloseAll releases them.
func New(t *ruleset.Tenant, start time.Time) (ruletest.Simulator, error) {
	// The engine's dispatcher, not ruletest's reference simulator: that one
	// is an independent model for cross-checking the engine, and it differs
	// on inhibition (peers matching both sides; resolved inhibited alerts),
	// where a test must answer what production does.
	route, err := engine.NewSim(t, start)
	if err != nil {
		return nil, err
	}
	s := &Sim{route: route, now: start, ticked: start}
	s.derived = len(t.Policies)+len(t.Heartbeats)+len(t.SLOs) > 0
	if !s.derived {
		return s, nil // nothing derived: the route tree is all there is
	}
	s.dir, err = os.MkdirTemp("", "klaxon-ruletest")
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	s.bus, err = bus.Open(ctx, bus.Config{DataDir: s.dir, Name: "ruletest"}, log)
	if err != nil {
		return nil, err
	}
	openMu.Lock()
	open = append(open, s)
	openMu.Unlock()
	holder := ruleset.NewStaticHolder(&ruleset.Set{Tenants: map[string]*ruleset.Tenant{t.Name: t}})
	reg := prometheus.NewRegistry()
	if s.policy, err = policy.New(ctx, policy.Config{Now: s.clock}, s.bus, holder, log, reg); err != nil {
		return nil, err
	}
	if s.hb, err = heartbeat.New(ctx, heartbeat.Config{Now: s.clock}, s.bus, holder, log, reg); err != nil {
		return nil, err
	}
	if s.slo, err = slorunner.New(ctx, slorunner.Config{Now: s.clock}, s.bus, holder, log, reg); err != nil {
		return nil, err
	}
	s.tick(start) // arms heartbeats
	return s, nil
}

// CloseAll stops every simulation's JetStream and removes its files.
func CloseAll() {
	openMu.Lock()
	defer openMu.Unlock()
	for _, s := range open {
		s.bus.Close()
		_ = os.RemoveAll(s.dir)
	}
	open = nil
}

func (s *Sim) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

func (s *Sim) setClock(t time.Time) {
	s.mu.Lock()
	s.now = t
	s.mu.Unlock()
}

// Ingest implements ruletest.Simulator.
func (s *Sim) Ingest(at time.Time, env *klaxonv1.Envelope) {
	s.route.Ingest(at, env)
	if !s.derived {
		return
	}
	s.setClock(at)
	ctx := context.Background()
	_ = s.policy.Process(ctx, env)
	_ = s.hb.Process(ctx, env)
	_ = s.slo.Process(ctx, env)
	s.feed(at)
}

// Advance implements ruletest.Simulator: the clock moves minute by minute,
// each minute ticking the derived components and routing what they emit.
func (s *Sim) Advance(to time.Time) []*klaxonv1.Notification {
	var out []*klaxonv1.Notification
	if s.derived {
		for next := s.ticked.Truncate(Step).Add(Step); !next.After(to); next = next.Add(Step) {
			out = append(out, s.route.Advance(next)...)
			s.tick(next)
		}
	}
	return append(out, s.route.Advance(to)...)
}

func (s *Sim) tick(at time.Time) {
	s.setClock(at)
	ctx := context.Background()
	_ = s.policy.Tick(ctx)
	_ = s.hb.Tick(ctx)
	_ = s.slo.Tick(ctx)
	s.ticked = at
	s.feed(at)
}

// feed routes the derived alerts published since the last call.
func (s *Sim) feed(at time.Time) {
	ctx := context.Background()
	str, err := s.bus.JS.Stream(ctx, bus.StreamIngest)
	if err != nil {
		return
	}
	info, err := str.Info(ctx)
	if err != nil {
		return
	}
	for seq := max(s.lastSeq+1, info.State.FirstSeq); seq <= info.State.LastSeq; seq++ {
		m, err := str.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return
		}
		s.lastSeq = seq
		envs, err := bus.DecodeEnvelopes(m.Header, m.Data)
		if err != nil {
			continue
		}
		for _, env := range envs {
			s.route.Ingest(at, env)
		}
	}
}
