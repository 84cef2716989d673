package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
)

func TestPublishDeduplicatesByMsgID(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	msg := bus.Message{Subject: bus.IngestSubject("default", "api-v2"), ID: "same", Data: []byte("x")}
	res, err := b.Publish(ctx, msg)
	if err != nil || res[0].Duplicate {
		t.Fatalf("first publish: %v %+v", err, res)
	}
	res, err = b.Publish(ctx, msg, bus.Message{Subject: msg.Subject, ID: "other", Data: []byte("y")})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Duplicate || res[1].Duplicate {
		t.Fatalf("want first duplicate, second new: %+v", res)
	}
	info, err := b.JS.Stream(ctx, bus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("stream holds %d messages, want 2", n)
	}
}

// One Publish of more messages than the connection lets be pending at once
// (a storm's flush of 100k groups) stores
// them all, each result in its message's place.
func TestPublishManyMoreThanThePendingLimit(t *testing.T) {
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 10000 // the connection allows 4096 pending
	msgs := make([]bus.Message, n)
	for i := range msgs {
		msgs[i] = bus.Message{Subject: bus.NotifySubject("default", "r"), ID: fmt.Sprint("n-", i), Data: []byte("x")}
	}
	msgs[n-1].ID = msgs[0].ID // a duplicate at the end
	res, err := b.Publish(ctx, msgs...)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res[:n-1] {
		if r.Duplicate || r.Seq != uint64(i+1) {
			t.Fatalf("message %d: %+v, want new at sequence %d", i, r, i+1)
		}
	}
	if !res[n-1].Duplicate {
		t.Fatalf("last message: %+v, want a duplicate of the first", res[n-1])
	}
}

func TestStreamsHaveLimits(t *testing.T) {
	b := bustest.New(t)
	for _, name := range []string{bus.StreamIngest, bus.StreamNotify, bus.StreamDLQ, bus.StreamAudit} {
		s, err := b.JS.Stream(context.Background(), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := s.CachedInfo().Config
		if c.MaxAge == 0 || c.MaxBytes <= 0 || c.Duplicates == 0 || c.Storage != jetstream.FileStorage {
			t.Errorf("%s: unbounded or not durable: %+v", name, c)
		}
	}
}

func TestConsumeRedeliversUntilHandled(t *testing.T) {
	b := bustest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	done := make(chan struct{})
	cc, err := b.Consume(ctx, bus.ConsumerConfig{Stream: bus.StreamNotify, Durable: "t", Filters: []string{bus.NotifyFilter("*")}, NakDelay: 10 * time.Millisecond},
		func(ctx context.Context, msg jetstream.Msg) error {
			if calls.Add(1) < 3 {
				return errors.New("transient")
			}
			close(done)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	if _, err := b.Publish(ctx, bus.Message{Subject: bus.NotifySubject("t1", "r"), Data: []byte("n")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("handler called %d times, never succeeded", calls.Load())
	}
}

func TestTokenIsInjective(t *testing.T) {
	seen := map[string]string{}
	for _, s := range []string{"team a", "team_a", "team_20a", "team.a", "", "_", "ok-name", "Ünï"} {
		tok := bus.Token(s)
		for _, c := range tok {
			if c == '.' || c == '*' || c == '>' || c == ' ' {
				t.Fatalf("Token(%q) = %q contains a subject metacharacter", s, tok)
			}
		}
		if prev, ok := seen[tok]; ok {
			t.Fatalf("Token(%q) = Token(%q) = %q", s, prev, tok)
		}
		seen[tok] = s
	}
}

func TestPublishFailsWhenStoreIsGone(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	if err := b.JS.DeleteStream(ctx, bus.StreamIngest); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := b.Publish(ctx, bus.Message{Subject: bus.IngestSubject("default", "x"), Data: []byte("x")})
	if !errors.Is(err, bus.ErrNotStored) {
		t.Fatalf("want ErrNotStored, got %v", err)
	}
}

// With Workers, a handler stuck on one key does not hold up the others, and
// messages of one key are handled one after another, in order.
func TestConsumeWorkersShardByKey(t *testing.T) {
	b := bustest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	var mu sync.Mutex
	order := map[string][]string{}
	other := make(chan struct{})
	cc, err := b.Consume(ctx, bus.ConsumerConfig{Stream: bus.StreamNotify, Durable: "w", Filters: []string{bus.NotifyFilter("*")},
		Workers: 4},
		func(ctx context.Context, msg jetstream.Msg) error {
			d := string(msg.Data())
			if d == "a1" {
				<-release // a slow delivery
			}
			mu.Lock()
			order[d[:1]] = append(order[d[:1]], d)
			n := len(order["b"])
			mu.Unlock()
			if d[:1] == "b" && n == 3 {
				close(other)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	for _, d := range []string{"a1", "a2", "b1", "b2", "a3", "b3"} {
		// One subject, two shard keys; a and b must land on different
		// workers for the test to say anything: with FNV-1a and 4 they do.
		if _, err := b.Publish(ctx, bus.Message{Subject: bus.NotifySubject("t1", "r"), Data: []byte(d), Shard: d[:1]}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-other:
	case <-time.After(10 * time.Second):
		t.Fatal("key b waited for the stuck handler of key a")
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := strings.Join(order["a"], ",") + " " + strings.Join(order["b"], ",")
		mu.Unlock()
		if got == "a1,a2,a3 b1,b2,b3" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("order per key: %s", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A second process on a data directory in use is refused (after LockWait), with a
// reason: NATS does not lock its store, and two klaxons on one directory
// both started, writing each other's stream files, each the engine's leader
// on its own server. Once the first has closed, the directory is free.
func TestDataDirIsUsedByOneProcessAtATime(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first, err := bus.Open(ctx, bus.Config{DataDir: dir}, bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if second, err := bus.Open(ctx, bus.Config{DataDir: dir, LockWait: 300 * time.Millisecond}, bustest.Logger(t)); err == nil || !strings.Contains(err.Error(), "in use by another klaxon") {
		if second != nil {
			second.Close()
		}
		first.Close()
		t.Fatalf("second Open on %s: %v, want it refused as in use", dir, err)
	}
	first.Close()
	again, err := bus.Open(ctx, bus.Config{DataDir: dir}, bustest.Logger(t))
	if err != nil {
		t.Fatalf("Open after the first closed: %v", err)
	}
	again.Close()
}

// A restart that overlaps the old process (systemd, a rolling update on one
// volume) waits for it to let go of the data directory instead of exiting.
func TestOpenWaitsForTheOldProcessToExit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old, err := bus.Open(ctx, bus.Config{DataDir: dir}, bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	time.AfterFunc(300*time.Millisecond, func() { old.Close(); close(exited) }) // the old process's shutdown
	b, err := bus.Open(ctx, bus.Config{DataDir: dir, LockWait: 30 * time.Second}, bustest.Logger(t))
	if err != nil {
		t.Fatalf("Open while the old process shut down: %v", err)
	}
	defer b.Close()
	select {
	case <-exited:
	default:
		t.Fatal("opened before the old process let go of the data directory")
	}
}

// A --nats.listen address in use fails Open at once, saying so (it was
// "embedded nats: not ready after 30s", with no word of the port).
func TestNATSListenAddressInUseFailsAtOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	began := time.Now()
	b, err := bus.Open(context.Background(), bus.Config{DataDir: t.TempDir(), Listen: l.Addr().String()}, bustest.Logger(t))
	if err == nil {
		b.Close()
		t.Fatal("Open on a port in use succeeded")
	}
	if !strings.Contains(err.Error(), "address already in use") || time.Since(began) > 10*time.Second {
		t.Fatalf("after %v: %v, want the port in use named at once", time.Since(began), err)
	}
}
