package receiver

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
)

// gatedPublish records every publish. Each gate held in gates holds one
// publish, in order, until the test closes it; entered is told when a held
// publish has begun. result, if set, decides the outcome.
type gatedPublish struct {
	mu      sync.Mutex
	calls   [][]string // envelope ids of each publish
	gates   []chan struct{}
	entered chan int // index of the held publish
	result  func(envs []*klaxonv1.Envelope) ([]bus.Result, []int, error)
}

func newGated(held int) (*gatedPublish, []chan struct{}) {
	p := &gatedPublish{entered: make(chan int, held)}
	for range held {
		p.gates = append(p.gates, make(chan struct{}))
	}
	return p, slices.Clone(p.gates)
}

func (p *gatedPublish) publish(ctx context.Context, envs []*klaxonv1.Envelope) ([]bus.Result, []int, error) {
	p.mu.Lock()
	ids := make([]string, len(envs))
	for i, e := range envs {
		ids[i] = e.Id
	}
	p.calls = append(p.calls, ids)
	i := len(p.calls) - 1
	var gate chan struct{}
	if i < len(p.gates) {
		gate = p.gates[i]
	}
	p.mu.Unlock()
	if gate != nil {
		p.entered <- i
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

// waitingFor is how many requests wait for subject's next publishes.
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

// idle: no subject is left busy.
func idle(t *testing.T, g *groupCommit) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queues) != 0 {
		t.Fatalf("queues left behind: %v", g.queues)
	}
}

type outcome struct {
	id           string
	stored, dups int
	err          error
}

// requests runs store calls in the background; next waits for an answer.
type requests struct {
	t   *testing.T
	g   *groupCommit
	out chan outcome
}

func newRequests(t *testing.T, g *groupCommit) *requests {
	return &requests{t: t, g: g, out: make(chan outcome, 16)}
}

func (r *requests) run(id string, envs []*klaxonv1.Envelope, size int) {
	go func() {
		stored, dups, err := r.g.store("s", envs, size)
		r.out <- outcome{id, stored, dups, err}
	}()
}

// answers collects n answers by request id.
func (r *requests) answers(n int) map[string]outcome {
	r.t.Helper()
	got := map[string]outcome{}
	for range n {
		o := r.next()
		got[o.id] = o
	}
	return got
}

func (r *requests) next() outcome {
	r.t.Helper()
	select {
	case o := <-r.out:
		return o
	case <-time.After(5 * time.Second):
		r.t.Fatal("no request answered within 5 s")
		return outcome{}
	}
}

func TestGroupCommitLoneRequestIsPublishedAtOnceAndAlone(t *testing.T) {
	p := &gatedPublish{}
	g := newGroupCommit(p)
	for _, id := range []string{"a", "b"} {
		stored, dups, err := g.store("s", env(id), 10)
		if err != nil || stored != 1 || dups != 0 {
			t.Fatalf("%s: stored %d dups %d err %v", id, stored, dups, err)
		}
	}
	if got := p.published(); !slices.EqualFunc(got, [][]string{{"a"}, {"b"}}, slices.Equal) {
		t.Fatalf("publishes %v, want each request alone", got)
	}
	idle(t, g)
}

// The requests that arrive while a publish is in flight go together in the
// next one, published by the first of them; the leader is answered without
// waiting for it, and requests arriving during that one form a third.
func TestGroupCommitGroupsRequestsArrivingDuringAPublish(t *testing.T) {
	p, gates := newGated(2)
	g := newGroupCommit(p)
	r := newRequests(t, g)
	r.run("a", env("a"), 10)
	<-p.entered // a's publish is in flight
	for _, id := range []string{"b", "c", "d"} {
		r.run(id, env(id), 10)
	}
	awaitWaiting(t, g, "s", 3)
	close(gates[0])
	<-p.entered // the second group's publish is in flight, and held
	if o := r.next(); o.id != "a" || o.err != nil || o.stored != 1 {
		t.Fatalf("first answer %+v, want a's, before the next publish ends", o)
	}
	r.run("e", env("e"), 10)
	awaitWaiting(t, g, "s", 1)
	close(gates[1])
	for range 4 {
		if o := r.next(); o.err != nil || o.stored != 1 || o.dups != 0 {
			t.Fatalf("%s: stored %d dups %d err %v", o.id, o.stored, o.dups, o.err)
		}
	}
	got := p.published()
	if len(got) != 3 || !slices.Equal(got[0], []string{"a"}) || !slices.Equal(got[2], []string{"e"}) {
		t.Fatalf("publishes %v, want [a], [b c d], [e]", got)
	}
	if second := slices.Sorted(slices.Values(got[1])); !slices.Equal(second, []string{"b", "c", "d"}) {
		t.Fatalf("second publish %v, want b, c and d together", got[1])
	}
	idle(t, g)
}

// A group is at most one batch message: requests beyond bus.MaxBatchBytes
// wait for the next publish.
func TestGroupCommitKeepsAGroupToOneMessage(t *testing.T) {
	p, gates := newGated(1)
	g := newGroupCommit(p)
	r := newRequests(t, g)
	r.run("a", env("a"), 10)
	<-p.entered
	third := bus.MaxBatchBytes / 3
	for _, id := range []string{"b", "c", "d", "e"} {
		r.run(id, env(id), third)
		awaitWaiting(t, g, "s", int(id[0]-'a'))
	}
	close(gates[0])
	for range 5 {
		if o := r.next(); o.err != nil || o.stored != 1 {
			t.Fatalf("%+v", o)
		}
	}
	got := p.published()
	if len(got) != 3 || len(got[1]) != 3 || len(got[2]) != 1 {
		t.Fatalf("publishes %v, want [a], three of a third of a message each, then the fourth", got)
	}
	idle(t, g)
}

// A group's duplicates are told to the requests whose alerts were in the
// duplicate message; a failed publish fails every request of its group.
func TestGroupCommitAnswersEachRequestForItsOwnAlerts(t *testing.T) {
	p, gates := newGated(2)
	fail := errors.New("no quorum")
	p.result = func(envs []*klaxonv1.Envelope) ([]bus.Result, []int, error) {
		switch {
		case envs[0].Id == "lead":
			return []bus.Result{{Seq: 1}}, []int{1}, nil
		case envs[0].Id == "one":
			// Two messages: the first (a duplicate) holds the first two
			// envelopes of the group.
			return []bus.Result{{Duplicate: true}, {Seq: 7}}, []int{2, len(envs) - 2}, nil
		default:
			return nil, nil, fail
		}
	}
	g := newGroupCommit(p)
	r := newRequests(t, g)
	r.run("lead", env("lead"), 10)
	<-p.entered
	r.run("one", env("one"), 10)
	awaitWaiting(t, g, "s", 1)
	r.run("two", []*klaxonv1.Envelope{{Id: "two-1"}, {Id: "two-2"}}, 20)
	awaitWaiting(t, g, "s", 2)
	close(gates[0])
	<-p.entered // one and two's publish
	if o := r.next(); o.id != "lead" || o.err != nil {
		t.Fatalf("%+v, want lead stored", o)
	}
	r.run("three", env("three"), 10)
	r.run("four", env("four"), 10)
	awaitWaiting(t, g, "s", 2)
	close(gates[1])
	got := r.answers(4)
	// one, then two-1 are in the duplicate message; two-2 in the other.
	if o := got["one"]; o.err != nil || o.stored != 0 || o.dups != 1 {
		t.Fatalf("one: %+v, want 1 duplicate", o)
	}
	if o := got["two"]; o.err != nil || o.stored != 1 || o.dups != 1 {
		t.Fatalf("two: %+v, want 1 stored and 1 duplicate", o)
	}
	for _, id := range []string{"three", "four"} {
		if o := got[id]; !errors.Is(o.err, fail) {
			t.Fatalf("%s: %+v, want the group's publish error", id, o)
		}
	}
	idle(t, g)
}

// The same alert in two requests of a group (both replicas of an HA pair
// posting it at once) is published once: a duplicate for the later request.
func TestGroupCommitPublishesAnAlertOfTwoRequestsOnce(t *testing.T) {
	p, gates := newGated(1)
	g := newGroupCommit(p)
	r := newRequests(t, g)
	r.run("lead", env("lead"), 10)
	<-p.entered
	r.run("replica-1", []*klaxonv1.Envelope{{Id: "x"}, {Id: "y"}}, 20)
	awaitWaiting(t, g, "s", 1)
	r.run("replica-2", []*klaxonv1.Envelope{{Id: "y"}, {Id: "z"}}, 20)
	awaitWaiting(t, g, "s", 2)
	close(gates[0])
	got := r.answers(3)
	if o := got["replica-1"]; o.err != nil || o.stored != 2 || o.dups != 0 {
		t.Fatalf("replica-1: %+v, want 2 stored", o)
	}
	if o := got["replica-2"]; o.err != nil || o.stored != 1 || o.dups != 1 {
		t.Fatalf("replica-2: %+v, want 1 stored and y a duplicate", o)
	}
	if calls := p.published(); len(calls) != 2 || !slices.Equal(calls[1], []string{"x", "y", "z"}) {
		t.Fatalf("publishes %v, want [lead] then [x y z]", calls)
	}
	idle(t, g)
}

// A publisher that panics, or answers for fewer envelopes than it was given,
// fails its group's requests and leaves the subject usable.
func TestGroupCommitSurvivesABrokenPublisher(t *testing.T) {
	p, gates := newGated(1)
	p.result = func(envs []*klaxonv1.Envelope) ([]bus.Result, []int, error) {
		switch envs[0].Id {
		case "a":
			panic("publisher bug")
		case "b":
			return []bus.Result{{Seq: 1}}, []int{1}, nil // for 1 of 2 envelopes
		}
		return []bus.Result{{Seq: 1}}, []int{len(envs)}, nil
	}
	g := newGroupCommit(p)
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		_, _, _ = g.store("s", env("a"), 10)
	}()
	<-p.entered
	r := newRequests(t, g)
	r.run("b", env("b"), 10)
	awaitWaiting(t, g, "s", 1)
	r.run("c", env("c"), 10)
	awaitWaiting(t, g, "s", 2)
	close(gates[0])
	if v := <-panicked; v != "publisher bug" {
		t.Fatalf("leader's panic %v, want it passed on", v)
	}
	for range 2 {
		if o := r.next(); o.err == nil || !strings.Contains(o.err.Error(), "of 2 envelopes answered 1 results for 1 messages holding 1 envelopes") {
			t.Fatalf("%+v, want an error for a short answer", o)
		}
	}
	if stored, _, err := g.store("s", env("d"), 10); err != nil || stored != 1 {
		t.Fatalf("after the panic: stored %d err %v", stored, err)
	}
	idle(t, g)
}

// Requests for another subject (tenant or source) never wait for, or share
// a message with, this one's.
func TestGroupCommitKeepsSubjectsApart(t *testing.T) {
	p, gates := newGated(1)
	g := newGroupCommit(p)
	done := make(chan error, 1)
	go func() {
		_, _, err := g.store("tenant-a", env("a"), 10)
		done <- err
	}()
	<-p.entered
	if stored, _, err := g.store("tenant-b", env("b"), 10); err != nil || stored != 1 {
		t.Fatalf("other subject: stored %d err %v while tenant-a's publish is in flight", stored, err)
	}
	close(gates[0])
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := p.published(); len(got) != 2 {
		t.Fatalf("publishes %v, want one per subject", got)
	}
	idle(t, g)
}
