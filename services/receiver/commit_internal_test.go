package receiver

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
)

// gatedPublish records every publish; while gate is set, a publish blocks
// until the gate is closed, so a test can hold one publish in flight.
type gatedPublish struct {
	mu      sync.Mutex
	calls   [][]string // envelope ids of each publish
	gate    chan struct{}
	entered chan struct{}
	result  func(envs []*klaxonv1.Envelope) ([]bus.Result, []int, error)
}

func (p *gatedPublish) publish(ctx context.Context, envs []*klaxonv1.Envelope) ([]bus.Result, []int, error) {
	p.mu.Lock()
	ids := make([]string, len(envs))
	for i, e := range envs {
		ids[i] = e.Id
	}
	p.calls = append(p.calls, ids)
	gate := p.gate
	p.gate = nil
	p.mu.Unlock()
	if gate != nil {
		p.entered <- struct{}{}
		<-gate
	}
	if p.result != nil {
		return p.result(envs)
	}
	return []bus.Result{{Seq: 1}}, []int{len(envs)}, nil
}

func (p *gatedPublish) published() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

func newGroupCommit(p *gatedPublish) *groupCommit {
	return &groupCommit{publish: p.publish, queues: map[string]*commitQueue{}}
}

func env(id string) []*klaxonv1.Envelope { return []*klaxonv1.Envelope{{Id: id}} }

// waiting is how many requests wait for subject's next publish.
func (g *groupCommit) waitingFor(subject string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if q := g.queues[subject]; q != nil {
		return len(q.waiting)
	}
	return 0
}

func awaitWaiting(t *testing.T, g *groupCommit, subject string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for g.waitingFor(subject) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests waiting, want %d", g.waitingFor(subject), n)
		}
		time.Sleep(time.Millisecond)
	}
}

type outcome struct {
	id           string
	stored, dups int
	err          error
}

func TestGroupCommitLoneRequestIsPublishedAtOnceAndAlone(t *testing.T) {
	p := &gatedPublish{}
	g := newGroupCommit(p)
	for _, id := range []string{"a", "b"} {
		stored, dups, err := g.store("s", env(id))
		if err != nil || stored != 1 || dups != 0 {
			t.Fatalf("%s: stored %d dups %d err %v", id, stored, dups, err)
		}
	}
	if got := p.published(); !slices.EqualFunc(got, [][]string{{"a"}, {"b"}}, slices.Equal) {
		t.Fatalf("publishes %v, want each request alone", got)
	}
	if g.waitingFor("s") != 0 || len(g.queues) != 0 {
		t.Fatalf("queue left behind: %v", g.queues)
	}
}

// The requests that arrive while a publish is in flight go together in the
// next one, and each is answered for its own alerts only.
func TestGroupCommitGroupsRequestsArrivingDuringAPublish(t *testing.T) {
	gate := make(chan struct{})
	p := &gatedPublish{gate: gate, entered: make(chan struct{}, 1)}
	g := newGroupCommit(p)
	out := make(chan outcome, 4)
	run := func(id string) {
		go func() {
			stored, dups, err := g.store("s", env(id))
			out <- outcome{id, stored, dups, err}
		}()
	}
	run("a")
	<-p.entered // a's publish is in flight
	for _, id := range []string{"b", "c", "d"} {
		run(id)
	}
	awaitWaiting(t, g, "s", 3)
	close(gate)
	for range 4 {
		o := <-out
		if o.err != nil || o.stored != 1 || o.dups != 0 {
			t.Fatalf("%s: stored %d dups %d err %v", o.id, o.stored, o.dups, o.err)
		}
	}
	got := p.published()
	if len(got) != 2 || !slices.Equal(got[0], []string{"a"}) {
		t.Fatalf("publishes %v, want [a] then [b c d] in one", got)
	}
	second := slices.Sorted(slices.Values(got[1]))
	if !slices.Equal(second, []string{"b", "c", "d"}) {
		t.Fatalf("second publish %v, want b, c and d together", got[1])
	}
}

// A group's duplicates are told to the requests whose alerts were in the
// duplicate message; a failed publish fails every request of its group.
func TestGroupCommitAnswersEachRequestForItsOwnAlerts(t *testing.T) {
	gate := make(chan struct{})
	p := &gatedPublish{gate: gate, entered: make(chan struct{}, 1)}
	fail := errors.New("no quorum")
	p.result = func(envs []*klaxonv1.Envelope) ([]bus.Result, []int, error) {
		switch len(envs) {
		case 1:
			return nil, nil, fail // the leader's lone publish
		default:
			// Two messages: the first (a duplicate) holds the first two
			// envelopes of the group.
			return []bus.Result{{Duplicate: true}, {Seq: 7}}, []int{2, len(envs) - 2}, nil
		}
	}
	g := newGroupCommit(p)
	out := make(chan outcome, 4)
	run := func(id string, envs []*klaxonv1.Envelope) {
		go func() {
			stored, dups, err := g.store("s", envs)
			out <- outcome{id, stored, dups, err}
		}()
	}
	run("lead", env("lead"))
	<-p.entered
	run("one", env("one"))
	awaitWaiting(t, g, "s", 1)
	run("two", []*klaxonv1.Envelope{{Id: "two-1"}, {Id: "two-2"}})
	awaitWaiting(t, g, "s", 2)
	close(gate)
	got := map[string]outcome{}
	for range 3 {
		o := <-out
		got[o.id] = o
	}
	if !errors.Is(got["lead"].err, fail) {
		t.Fatalf("lead: %+v, want the publish error", got["lead"])
	}
	// one, then two-1 are in the duplicate message; two-2 in the other.
	if o := got["one"]; o.err != nil || o.stored != 0 || o.dups != 1 {
		t.Fatalf("one: %+v, want 1 duplicate", o)
	}
	if o := got["two"]; o.err != nil || o.stored != 1 || o.dups != 1 {
		t.Fatalf("two: %+v, want 1 stored and 1 duplicate", o)
	}
}

// Requests for another subject (tenant or source) never wait for, or share
// a message with, this one's.
func TestGroupCommitKeepsSubjectsApart(t *testing.T) {
	gate := make(chan struct{})
	p := &gatedPublish{gate: gate, entered: make(chan struct{}, 1)}
	g := newGroupCommit(p)
	done := make(chan error, 1)
	go func() {
		_, _, err := g.store("tenant-a", env("a"))
		done <- err
	}()
	<-p.entered
	if stored, _, err := g.store("tenant-b", env("b")); err != nil || stored != 1 {
		t.Fatalf("other subject: stored %d err %v while tenant-a's publish is in flight", stored, err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := p.published(); len(got) != 2 {
		t.Fatalf("publishes %v, want one per subject", got)
	}
}
