package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

const restartRules = baseRoute + `
route:
  receiver: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
`

func kvDispatcher(t *testing.T, b *bus.Bus, tn *ruleset.Tenant) *Dispatcher {
	t.Helper()
	ctx := context.Background()
	st, err := NewKVStore(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDispatcher(DispatcherConfig{Store: st, Rules: func(string) *ruleset.Tenant { return tn }})
	if err := d.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

func tickDescribe(t *testing.T, d *Dispatcher, at time.Duration, ack bool) []string {
	t.Helper()
	ns, err := d.Tick(context.Background(), t0.Add(at))
	if err != nil {
		t.Fatal(err)
	}
	must(t, d.Commit(context.Background()))
	var out []string
	for _, n := range ns {
		out = append(out, describe(n)+" "+n.IdempotencyKey)
	}
	if ack {
		if err := d.Ack(context.Background(), ns...); err != nil {
			t.Fatal(err)
		}
		must(t, d.Commit(context.Background()))
	}
	return out
}

// A new engine on the same KV (here: after the NATS server itself was
// restarted on the same files) resumes pending groups: it neither
// re-notifies what was sent nor drops what was waiting, and a notification
// decided but not known to be published comes back with the same key.
func TestRestartMidGroup(t *testing.T) {
	dir := t.TempDir()
	tn := loadTenant(t, "team-a", restartRules)
	ctx := context.Background()

	b1 := bustest.NewAt(t, dir)
	d1 := kvDispatcher(t, b1, tn)
	must(t, d1.Receive(ctx, "team-a", alertOf("alertname=A,id=1", t0, 3*time.Hour), t0))
	must(t, d1.Commit(ctx))
	if got := tickDescribe(t, d1, 30*time.Second, true); len(got) != 1 {
		t.Fatalf("first flush: %q", got)
	}
	must(t, d1.Receive(ctx, "team-a", alertOf("alertname=A,id=2", t0.Add(time.Minute), 3*time.Hour), t0.Add(time.Minute)))
	must(t, d1.Commit(ctx))
	must(t, d1.Receive(ctx, "team-a", alertOf("alertname=B,id=3", t0.Add(time.Minute), 3*time.Hour), t0.Add(time.Minute)))
	must(t, d1.Commit(ctx))
	b1.Close()

	b2 := bustest.NewAt(t, dir)
	d2 := kvDispatcher(t, b2, tn)
	if got := tickDescribe(t, d2, 90*time.Second, true); len(got) != 1 || !strings.HasPrefix(got[0], "1m30s default firing [3] ") {
		t.Fatalf("after restart, B's group (waiting) flushes once at its group_wait: %q", got)
	}
	// The flush of A's group is decided, then the engine dies before publishing.
	pending := tickDescribe(t, d2, 5*time.Minute+30*time.Second, false)
	if len(pending) != 1 || !strings.HasPrefix(pending[0], "5m30s default firing [1 2] ") {
		t.Fatalf("A's group after its group_interval: %q", pending)
	}

	d3 := kvDispatcher(t, b2, tn)
	again := tickDescribe(t, d3, 5*time.Minute+31*time.Second, true)
	if len(again) != 1 || again[0] != pending[0] {
		t.Fatalf("unpublished notification must come back unchanged (same idempotency key):\n got %q\nwant %q", again, pending)
	}
	if got := tickDescribe(t, d3, 11*time.Minute, true); len(got) != 0 {
		t.Fatalf("nothing changed, nothing to send: %q", got)
	}
}

// A group stored with a notification decided but not known to be published
// (the engine stopped before the publish was acknowledged) is loaded
// pending: the new engine publishes it again under its key, and a flush
// that comes due meanwhile waits only for that publish, not for another
// group_interval. Here a resolution received by the new engine goes out
// within a second of the republish being acknowledged.
func TestLoadedPendingHoldsAFlushOnlyUntilRepublished(t *testing.T) {
	tn := loadTenant(t, "team-a", restartRules)
	ctx := context.Background()
	b := bustest.New(t)
	d1 := kvDispatcher(t, b, tn)
	must(t, d1.Receive(ctx, "team-a", alertOf("alertname=A,id=1", t0, 0), t0))
	must(t, d1.Commit(ctx))
	decided := tickDescribe(t, d1, 30*time.Second, false)
	if len(decided) != 1 || !strings.HasPrefix(decided[0], "30s default firing [1] ") {
		t.Fatalf("first flush: %q", decided)
	}

	d2 := kvDispatcher(t, b, tn)
	must(t, d2.Receive(ctx, "team-a", alertOf("alertname=A,id=1", t0.Add(time.Minute), -1), t0.Add(time.Minute)))
	must(t, d2.Commit(ctx))
	// The group is due at 5m30s; its stored notification is published again
	// (the publish fails here), and the held flush is retried a second
	// later, not at once: a failing publish must not make the engine spin.
	if got := tickDescribe(t, d2, 5*time.Minute+30*time.Second, false); len(got) != 1 || got[0] != decided[0] {
		t.Fatalf("due with its loaded notification pending: %q, want it again alone (same key) %q", got, decided)
	}
	if next, ok := d2.NextDue(); !ok || !next.Equal(t0.Add(5*time.Minute+30*time.Second+pendingRetry)) {
		t.Fatalf("next due %v (%v), want the held flush %v later", next.Sub(t0), ok, pendingRetry)
	}
	if got := tickDescribe(t, d2, 5*time.Minute+31*time.Second, true); len(got) != 1 || got[0] != decided[0] {
		t.Fatalf("the retry: %q, want the pending notification again %q", got, decided)
	}
	if got := tickDescribe(t, d2, 5*time.Minute+32*time.Second, true); len(got) != 1 || !strings.HasPrefix(got[0], "5m32s default resolved [1-] ") {
		t.Fatalf("the held flush after the republish was acknowledged: %q, want the resolution", got)
	}
}

// A replica that lost ownership cannot overwrite the new owner's state.
func TestStaleWriterIsFenced(t *testing.T) {
	b := bustest.New(t)
	tn := loadTenant(t, "team-a", restartRules)
	ctx := context.Background()
	old := kvDispatcher(t, b, tn)
	must(t, old.Receive(ctx, "team-a", alertOf("alertname=A,id=1", t0, time.Hour), t0))
	must(t, old.Commit(ctx))
	cur := kvDispatcher(t, b, tn)
	must(t, cur.Receive(ctx, "team-a", alertOf("alertname=A,id=2", t0, time.Hour), t0))
	must(t, cur.Commit(ctx))
	must(t, old.Receive(ctx, "team-a", alertOf("alertname=A,id=3", t0, time.Hour), t0))
	if err := old.Commit(ctx); !errors.Is(err, ErrLostOwnership) {
		t.Fatalf("stale write: got %v, want ErrLostOwnership", err)
	}
}

// A destroyed group leaves a tombstone whose revision fences writers. A
// restarted engine learns it from the bucket, so the same group coming back
// is written over its tombstone (not refused as another replica's write).
func TestGroupRecreatedOverTombstoneAfterRestart(t *testing.T) {
	b := bustest.New(t)
	tn := loadTenant(t, "team-a", restartRules)
	ctx := context.Background()
	d := kvDispatcher(t, b, tn)
	must(t, d.Receive(ctx, "team-a", alertOf("alertname=A,id=1", t0, time.Minute), t0))
	must(t, d.Commit(ctx))
	if got := tickDescribe(t, d, 31*time.Second, true); len(got) != 1 {
		t.Fatalf("first flush sent %v", got)
	}
	if got := tickDescribe(t, d, 6*time.Minute, true); len(got) != 1 || !strings.Contains(got[0], "resolved") {
		t.Fatalf("second flush sent %v, want the resolution", got)
	}
	if gs, err := ReadGroups(ctx, b, "team-a"); err != nil || len(gs) != 0 {
		t.Fatalf("after the resolution: %d groups stored (%v), want none", len(gs), err)
	}
	again := kvDispatcher(t, b, tn)
	must(t, again.Receive(ctx, "team-a", alertOf("alertname=A,id=2", t0.Add(time.Hour), 0), t0.Add(time.Hour)))
	if err := again.Commit(ctx); err != nil {
		t.Fatalf("recreating the group over its tombstone: %v", err)
	}
	if gs, err := ReadGroups(ctx, b, "team-a"); err != nil || len(gs) != 1 || gs[0].Alerts.Len() != 1 {
		t.Fatalf("recreated group not stored: %d groups, %v", len(gs), err)
	}
}

// shortTombstones is a dispatcher over a KVStore whose tombstones expire
// after a second instead of a day.
func shortTombstones(t *testing.T, b *bus.Bus, tn *ruleset.Tenant) (*Dispatcher, *KVStore) {
	t.Helper()
	st, err := NewKVStore(context.Background(), b)
	must(t, err)
	st.tombTTL = time.Second
	d := NewDispatcher(DispatcherConfig{Store: st, Rules: func(string) *ruleset.Tenant { return tn }})
	must(t, d.Load(context.Background()))
	return d, st
}

// fireAndResolve has alert id of group A fire at t0+at and resolve, flushing
// both, so its group is destroyed; it returns the group's KV key.
func fireAndResolve(t *testing.T, d *Dispatcher, b *bus.Bus, id string, at time.Duration) string {
	t.Helper()
	ctx := context.Background()
	must(t, d.Receive(ctx, "team-a", alertOf("alertname=A,id="+id, t0.Add(at), 0), t0.Add(at)))
	must(t, d.Commit(ctx))
	gs, err := ReadGroups(ctx, b, "team-a")
	if err != nil || len(gs) != 1 {
		t.Fatalf("%d groups stored (%v), want 1", len(gs), err)
	}
	key := gs[0].kvKey().String()
	if got := tickDescribe(t, d, at+31*time.Second, true); len(got) != 1 {
		t.Fatalf("first flush sent %v", got)
	}
	if got := tickDescribe(t, d, at+6*time.Minute, true); len(got) != 1 || !strings.Contains(got[0], "resolved") {
		t.Fatalf("second flush sent %v, want the resolution", got)
	}
	return key
}

func awaitExpiry(t *testing.T, st *KVStore, key string) {
	t.Helper()
	waitFor(t, "the tombstone of "+key+" to expire", func() bool {
		_, rev, err := st.kv.Read(context.Background(), key)
		must(t, err)
		return rev == 0
	})
}

// A group destroyed and, after its tombstone expired (a day later in
// production), created again under the same key must be stored, by the
// replica that destroyed it or by one that loaded its tombstone. It was
// written expecting the expired tombstone's revision, conflicted, and the
// leader took that for another replica's write: it stopped dispatching
// and reloaded everything, and did so for every such group. A value
// another replica wrote under the key still fences the write.
func TestGroupRecreatedAfterItsTombstoneExpired(t *testing.T) {
	tn := loadTenant(t, "team-a", restartRules)
	ctx := context.Background()
	t.Run("same leader", func(t *testing.T) {
		b := bustest.New(t)
		d, st := shortTombstones(t, b, tn)
		awaitExpiry(t, st, fireAndResolve(t, d, b, "1", 0))
		must(t, d.Receive(ctx, "team-a", alertOf("alertname=A,id=2", t0.Add(25*time.Hour), 0), t0.Add(25*time.Hour)))
		if err := d.Commit(ctx); err != nil {
			t.Fatalf("recreating the group after its tombstone expired: %v", err)
		}
		if gs, err := ReadGroups(ctx, b, "team-a"); err != nil || len(gs) != 1 || gs[0].Alerts.Len() != 1 {
			t.Fatalf("recreated group not stored: %d groups, %v", len(gs), err)
		}
	})
	t.Run("tombstone loaded", func(t *testing.T) {
		b := bustest.New(t)
		d1, _ := shortTombstones(t, b, tn)
		key := fireAndResolve(t, d1, b, "1", 0)
		d2, st := shortTombstones(t, b, tn)
		if _, ok := st.tombs[key]; !ok {
			t.Fatalf("the new replica did not load the tombstone of %s", key)
		}
		awaitExpiry(t, st, key)
		must(t, d2.Receive(ctx, "team-a", alertOf("alertname=A,id=2", t0.Add(25*time.Hour), 0), t0.Add(25*time.Hour)))
		if err := d2.Commit(ctx); err != nil {
			t.Fatalf("recreating the group after its loaded tombstone expired: %v", err)
		}
	})
	t.Run("another replica wrote it", func(t *testing.T) {
		b := bustest.New(t)
		old, st := shortTombstones(t, b, tn)
		awaitExpiry(t, st, fireAndResolve(t, old, b, "1", 0))
		cur := kvDispatcher(t, b, tn)
		must(t, cur.Receive(ctx, "team-a", alertOf("alertname=A,id=2", t0.Add(25*time.Hour), 0), t0.Add(25*time.Hour)))
		must(t, cur.Commit(ctx))
		must(t, old.Receive(ctx, "team-a", alertOf("alertname=A,id=3", t0.Add(25*time.Hour), 0), t0.Add(25*time.Hour)))
		if err := old.Commit(ctx); !errors.Is(err, ErrLostOwnership) {
			t.Fatalf("deposed replica writing the group another one created: %v, want ErrLostOwnership", err)
		}
	})
}

// A leader remembers the revision of every group it destroyed, to fence
// writes to the key while its tombstone lasts. It remembered them for as
// long as it led: with group_by ['...'] one per alert ever resolved, a
// leak that grew for weeks. It now forgets a tombstone a while after it
// expired, and a group coming back meanwhile is still stored.
func TestDestroyedGroupsAreForgottenOnceExpired(t *testing.T) {
	tn := loadTenant(t, "team-a", baseRoute+`
route:
  receiver: default
  group_by: ['...']
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 1h
`)
	b := bustest.New(t)
	ctx := context.Background()
	st, err := NewKVStore(ctx, b)
	must(t, err)
	now := t0
	st.now = func() time.Time { return now }
	d := NewDispatcher(DispatcherConfig{Store: st, Rules: func(string) *ruleset.Tenant { return tn }})
	must(t, d.Load(ctx))
	// An alert of its own resolves every hour, for three days.
	const hours = 72
	for h := range hours {
		now = t0.Add(time.Duration(h) * time.Hour)
		id := fmt.Sprint(h)
		must(t, d.Receive(ctx, "team-a", alertOf("alertname=A,id="+id, now, 0), now))
		must(t, d.Commit(ctx))
		for _, at := range []time.Time{now, now.Add(2 * time.Minute)} {
			now = at
			ns, err := d.Tick(ctx, at)
			must(t, err)
			must(t, d.Commit(ctx))
			must(t, d.Ack(ctx, ns...))
			must(t, d.Commit(ctx))
		}
		if h == 30 {
			// The previous hour's alert fires again: its group is
			// written over its tombstone.
			must(t, d.Receive(ctx, "team-a", alertOf("alertname=A,id=29", now, 0), now))
			must(t, d.Commit(ctx))
		}
	}
	// Kept: the last tombstoneTTL, tombstoneSlack and goneSweep of them.
	if max := int((tombstoneTTL+tombstoneSlack+goneSweep)/time.Hour) + 1; len(st.gone) > max {
		t.Fatalf("after %d groups destroyed an hour apart, %d revisions remembered, want at most %d", hours, len(st.gone), max)
	}
	if len(st.gone) < int(tombstoneTTL/time.Hour) {
		t.Fatalf("%d revisions remembered, want at least the last %v's", len(st.gone), tombstoneTTL)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Two engine replicas against one NATS server: the leader is killed (its
// connection cut, no lease release) while a group waits; the other takes
// over and sends exactly one notification per flush.
func TestTwoReplicasFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	log := bustest.Logger(t)
	srv, err := bus.Open(ctx, bus.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Name: "srv"}, log)
	must(t, err)
	t.Cleanup(srv.Close)
	url := srv.NC.ConnectedUrl()

	tn := loadTenant(t, "team-a", baseRoute+`
route:
  receiver: default
  group_by: [alertname]
  group_wait: 4s
  group_interval: 1s
  repeat_interval: 1h
`)
	rules := ruleset.NewStaticHolder(&ruleset.Set{Tenants: map[string]*ruleset.Tenant{"team-a": tn}})
	cfg := Config{LeaseTTL: 2 * time.Second, AckWait: 2 * time.Second, MaxTick: 100 * time.Millisecond}
	start := func(owner string) (context.CancelFunc, *bus.Bus) {
		b, err := bus.Open(ctx, bus.Config{URL: url, Replicas: 1, Name: owner}, log)
		must(t, err)
		c := cfg
		c.Owner = owner
		e := New(b, rules, log.With("owner", owner), prometheus.NewRegistry(), WithConfig(c))
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = e.Run(rctx) }()
		return func() { rcancel(); <-done }, b
	}
	kv, err := srv.TTLKV(ctx, bus.BucketGroups)
	must(t, err)
	owner := func() string { v, _, _ := kv.Read(ctx, leaseKey); return string(v) }

	stop1, b1 := start("e1")
	waitFor(t, "e1 leads", func() bool { return owner() == "e1" })
	stop2, b2 := start("e2")
	defer b2.Close()
	defer stop2()

	publishAlert(t, srv, "alertname=A,id=1")
	waitFor(t, "group stored", func() bool {
		gs, err := ReadGroups(ctx, srv, "team-a")
		return err == nil && len(gs) == 1
	})
	// Kill e1: cut its connection first so it cannot release the lease.
	b1.NC.Close()
	stop1()
	waitFor(t, "e2 takes over", func() bool { return owner() == "e2" })
	waitFor(t, "first notification", func() bool { return notifyCount(t, srv) >= 1 })

	publishAlert(t, srv, "alertname=A,id=2")
	waitFor(t, "second notification", func() bool { return notifyCount(t, srv) >= 2 })
	// Several group_intervals pass with nothing new: no further notification.
	time.Sleep(2500 * time.Millisecond)
	if n := notifyCount(t, srv); n != 2 {
		t.Fatalf("NOTIFY holds %d notifications, want exactly 2", n)
	}
}

func publishAlert(t *testing.T, b *bus.Bus, spec string) {
	t.Helper()
	now := time.Now()
	a := alertOf(spec, now, 0)
	env := &klaxonv1.Envelope{Tenant: "team-a", Source: "test", ReceivedAt: timestamppb.New(now), Id: spec,
		Payload: &klaxonv1.Envelope_Alert{Alert: a}}
	data, err := proto.Marshal(env)
	must(t, err)
	if _, err := b.Publish(context.Background(), bus.Message{Subject: bus.IngestSubject("team-a", "test"), ID: spec, Data: data}); err != nil {
		t.Fatal(err)
	}
}

func notifyCount(t *testing.T, b *bus.Bus) uint64 {
	t.Helper()
	st, err := b.JS.Stream(context.Background(), bus.StreamNotify)
	must(t, err)
	info, err := st.Info(context.Background())
	must(t, err)
	return info.State.Msgs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A group encoded larger than the server takes (an alert that grew by an
// update: MaxGroupBytes bounds only new alerts) is not written, so the
// commit, and the other groups in it, still succeed; the group keeps its
// last stored value. Without MaxValueBytes the write fails the commit,
// and so, redelivered, every batch after it.
func TestOversizeGroupDoesNotFailTheCommit(t *testing.T) {
	b := bustest.New(t)
	tn := loadTenant(t, "team-a", restartRules)
	ctx := context.Background()
	for _, bounded := range []bool{true, false} {
		st, err := NewKVStore(ctx, b)
		must(t, err)
		if bounded {
			st.MaxValueBytes, st.Log = maxValueBytes(b.NC.MaxPayload()), bustest.Logger(t)
		}
		d := NewDispatcher(DispatcherConfig{Store: st, Rules: func(string) *ruleset.Tenant { return tn }})
		must(t, d.Load(ctx))
		name := fmt.Sprintf("A%v", bounded)
		must(t, d.Receive(ctx, "team-a", alertOf("alertname="+name+",id=1", t0, time.Hour), t0))
		must(t, d.Commit(ctx))
		big := alertOf("alertname="+name+",id=1", t0, time.Hour)
		big.Annotations = map[string]string{"description": strings.Repeat("x", int(b.NC.MaxPayload()))}
		must(t, d.Receive(ctx, "team-a", big, t0))
		must(t, d.Receive(ctx, "team-a", alertOf(fmt.Sprintf("alertname=B%v,id=1", bounded), t0, time.Hour), t0))
		err = d.Commit(ctx)
		if !bounded {
			if err == nil {
				t.Fatal("an unbounded store wrote a value larger than max_payload; this test shows nothing")
			}
			continue
		}
		if err != nil {
			t.Fatalf("commit with a group too large to store: %v, want the other groups stored and no error", err)
		}
		gs, err := ReadGroups(ctx, b, "team-a")
		must(t, err)
		stored := map[string]int{}
		for _, g := range gs {
			for _, a := range g.Alerts.All() {
				stored[g.Labels.String()] += len(a.Annotations.s)
			}
		}
		if _, ok := stored[`{alertname="Btrue"}`]; !ok || stored[`{alertname="Atrue"}`] != 0 || len(stored) != 2 {
			t.Fatalf("stored groups (annotation bytes by group) %v, want Atrue as first stored and Btrue", stored)
		}
	}
}

// An alert storm into one group (group_by: [alertname]) past what one
// stored group can hold: the engine stores what fits, counts the alerts it
// refuses, acknowledges every batch, and goes on routing. Before
// MaxGroupBytes the group's write failed with "maximum payload exceeded"
// once it passed max_payload, and the batch was redelivered for ever:
// routing stopped for every group of every tenant.
func TestStormIntoOneGroupKeepsRouting(t *testing.T) {
	// The embedded server's 8 MiB, and an external server's default.
	for _, maxPayload := range []int32{0, 1 << 20} {
		t.Run(fmt.Sprintf("max_payload=%d", maxPayload), func(t *testing.T) { stormIntoOneGroup(t, bustest.NewWithMaxPayload(t, maxPayload)) })
	}
}

func stormIntoOneGroup(t *testing.T, b *bus.Bus) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tn := loadTenant(t, "team-a", baseRoute+`  - name: "null"
route:
  receiver: "null"
  group_by: [alertname]
  group_wait: 30s
`)
	reg := prometheus.NewRegistry()
	e := New(b, ruleset.NewStaticHolder(&ruleset.Set{Tenants: map[string]*ruleset.Tenant{"team-a": tn}}), bustest.Logger(t), reg,
		WithConfig(Config{AckWait: 5 * time.Second}))
	done := make(chan struct{})
	rctx, stop := context.WithCancel(ctx)
	go func() { defer close(done); _ = e.Run(rctx) }()
	defer func() { stop(); <-done }()

	// 2 KB of annotation each: about 980 fit the embedded server's group,
	// about 120 an external server's.
	desc := strings.Repeat("d", 2048)
	fits := maxGroupBytes(b.NC.MaxPayload()) / alertBytes(fromProto(&klaxonv1.Alert{
		Labels: map[string]string{"alertname": "Storm", "id": "00000"}, Annotations: map[string]string{"description": desc}}, t0, 0, false))
	n := 4*fits + 100 // past max_payload, were they all stored
	var envs []*klaxonv1.Envelope
	now := time.Now()
	for i := range n {
		a := &klaxonv1.Alert{Labels: map[string]string{"alertname": "Storm", "id": fmt.Sprintf("%05d", i)},
			Annotations: map[string]string{"description": desc}, StartsAt: timestamppb.New(now), Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING}
		envs = append(envs, &klaxonv1.Envelope{Tenant: "team-a", Source: "test", Id: fmt.Sprint(i), ReceivedAt: timestamppb.New(now),
			Payload: &klaxonv1.Envelope_Alert{Alert: a}})
	}
	msgs, _, err := bus.IngestMessages(envs, true)
	must(t, err)
	_, err = b.Publish(ctx, msgs...)
	must(t, err)
	publishAlert(t, b, "alertname=After,id=1")

	waitFor(t, "the alert after the storm routed", func() bool {
		gs, err := ReadGroups(ctx, b, "team-a")
		if err != nil {
			return false
		}
		for _, g := range gs {
			if g.Labels.String() == `{alertname="After"}` {
				return true
			}
		}
		return false
	})
	gs, err := ReadGroups(ctx, b, "team-a")
	must(t, err)
	held := 0
	for _, g := range gs {
		if g.Labels.String() == `{alertname="Storm"}` {
			held = g.Alerts.Len()
		}
	}
	refused := counterValue(t, reg, "klaxon_engine_alerts_refused_group_full_total")
	if held < fits || held > fits+1 || int(refused) != n-held {
		t.Fatalf("storm group stores %d alerts and %v were refused, want %d (what fits) and %d", held, refused, fits, n-fits)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// A notification that cannot be published (larger than max_payload: here a
// group holding a 1.5 MB alert, behind a 1 MiB server) holds up only its own
// group. Before, one publish error left every published notification
// unacknowledged, so every group stayed pending and sent nothing after its
// first notification.
func TestUnpublishableNotificationHoldsUpOnlyItsGroup(t *testing.T) {
	ctx := context.Background()
	b := bustest.NewWithMaxPayload(t, 1<<20)
	tn := loadTenant(t, "team-a", baseRoute+`
route:
  receiver: default
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 1h
`)
	e := New(b, ruleset.NewStaticHolder(&ruleset.Set{Tenants: map[string]*ruleset.Tenant{"team-a": tn}}), bustest.Logger(t), prometheus.NewRegistry())
	d := NewDispatcher(DispatcherConfig{Rules: func(string) *ruleset.Tenant { return tn }})
	big := alertOf("alertname=A,id=1", t0, time.Hour)
	big.Annotations = map[string]string{"description": strings.Repeat("x", 1500<<10)}
	must(t, d.Receive(ctx, "team-a", big, t0))
	must(t, d.Receive(ctx, "team-a", alertOf("alertname=B,id=1", t0, time.Hour), t0))
	ns, err := d.Tick(ctx, t0)
	must(t, err)
	if len(ns) != 2 {
		t.Fatalf("%d notifications, want A's and B's", len(ns))
	}
	if err := e.publishAndAck(ctx, d, ns); !errors.Is(err, bus.ErrTooLarge) {
		t.Fatalf("publishing A's 1.5 MB notification on a 1 MiB server: %v, want ErrTooLarge", err)
	}
	if n := notifyCount(t, b); n != 1 {
		t.Fatalf("NOTIFY holds %d, want B's notification", n)
	}
	// B's group goes on: its next alert is notified at its group_interval.
	must(t, d.Receive(ctx, "team-a", alertOf("alertname=B,id=2", t0.Add(time.Second), time.Hour), t0.Add(time.Second)))
	ns, err = d.Tick(ctx, t0.Add(time.Minute))
	must(t, err)
	var got []string
	for _, n := range ns {
		got = append(got, n.GroupKey+" "+describe(n))
	}
	slices.Sort(got)
	want := []string{`{}:{alertname="A"} 0s default firing [1]`, `{}:{alertname="B"} 1m0s default firing [1 2]`}
	if !slices.Equal(got, want) {
		t.Fatalf("at B's group_interval: %q, want %q (A's still pending, B's flush)", got, want)
	}
}

// A stored group that does not decode (a hand edit, a newer format after a
// downgrade) is skipped, not fatal: Load failing for it stopped routing for
// every tenant, retried for ever. The group's alerts come back when they
// are sent again, written over the bad value.
func TestUndecodableGroupIsSkipped(t *testing.T) {
	b := bustest.New(t)
	tn := loadTenant(t, "team-a", restartRules)
	ctx := context.Background()
	d := kvDispatcher(t, b, tn)
	must(t, d.Receive(ctx, "team-a", alertOf("alertname=A,id=1", t0, time.Hour), t0))
	must(t, d.Receive(ctx, "team-a", alertOf("alertname=B,id=1", t0, time.Hour), t0))
	must(t, d.Commit(ctx))
	kv, err := b.TTLKV(ctx, bus.BucketGroups)
	must(t, err)
	var keyA string
	gs, err := ReadGroups(ctx, b, "team-a")
	must(t, err)
	for _, g := range gs {
		if g.Labels.String() == `{alertname="A"}` {
			keyA = g.kvKey().String()
		}
	}
	_, rev, err := kv.Read(ctx, keyA)
	must(t, err)
	_, err = kv.Write(ctx, keyA, []byte(`{"alerts":[{"fp":`), rev, 0)
	must(t, err)

	again := kvDispatcher(t, b, tn) // Load: fatal before
	must(t, again.Receive(ctx, "team-a", alertOf("alertname=A,id=1", t0, time.Hour), t0.Add(time.Minute)))
	must(t, again.Commit(ctx))
	gs, err = ReadGroups(ctx, b, "team-a")
	must(t, err)
	var got []string
	for _, g := range gs {
		got = append(got, g.Labels.String())
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{`{alertname="A"}`, `{alertname="B"}`}) {
		t.Fatalf("stored groups %v, want A (written over the bad value) and B", got)
	}
}
