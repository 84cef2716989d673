package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
)

// A backlog is taken in batches (group commit), every message exactly once
// when the handler succeeds, even while the handler is slow.
func TestConsumeBatchesDrainsABacklog(t *testing.T) {
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 20000
	msgs := make([]bus.Message, 0, 1000)
	for i := 0; i < n; i++ {
		msgs = append(msgs, bus.Message{Subject: bus.IngestSubject("default", "test"), ID: fmt.Sprint(i), Data: []byte(fmt.Sprint(i))})
		if len(msgs) == cap(msgs) {
			if _, err := b.Publish(ctx, msgs...); err != nil {
				t.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	biggest := 0
	done := make(chan struct{})
	cc, err := b.ConsumeBatches(ctx, bus.ConsumerConfig{Stream: bus.StreamIngest, Durable: "batches", MaxAckPending: 4096}, 512,
		func(_ context.Context, batch []jetstream.Msg) error {
			time.Sleep(5 * time.Millisecond) // a commit's round trip
			mu.Lock()
			defer mu.Unlock()
			biggest = max(biggest, len(batch))
			for _, m := range batch {
				seen[string(m.Data())]++
			}
			if len(seen) == n {
				close(done)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("handled %d of %d messages", len(seen), n)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("message %s handled %d times", k, c)
		}
	}
	if biggest < 100 {
		t.Fatalf("largest batch %d: a backlog should be taken in large batches", biggest)
	}
}

// A consumer that has caught up waits for the next message instead of
// asking for what is ready; a burst that arrives then is still taken in
// large batches, not one message at a time.
func TestConsumeBatchesTakesABurstAfterCatchingUp(t *testing.T) {
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	publish := func(from, to int) {
		msgs := make([]bus.Message, 0, to-from)
		for i := from; i < to; i++ {
			msgs = append(msgs, bus.Message{Subject: bus.IngestSubject("default", "test"), ID: fmt.Sprint(i), Data: []byte(fmt.Sprint(i))})
		}
		if _, err := b.Publish(ctx, msgs...); err != nil {
			t.Error(err)
		}
	}
	const burst = 2000
	first, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	seen := map[string]int{}
	done := make(chan struct{})
	cc, err := b.ConsumeBatches(ctx, bus.ConsumerConfig{Stream: bus.StreamIngest, Durable: "burst", MaxAckPending: 4096}, 512,
		func(_ context.Context, batch []jetstream.Msg) error {
			mu.Lock()
			sizes = append(sizes, len(batch))
			for _, m := range batch {
				seen[string(m.Data())]++
			}
			n := len(seen)
			mu.Unlock()
			if n == 1 {
				close(first)
				<-release // the burst is published while this one is handled
			}
			if n == burst+1 {
				close(done)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	publish(0, 1) // the only message: the consumer has caught up after it
	<-first
	publish(1, burst+1)
	close(release)
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("handled %d of %d messages", len(seen), burst+1)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("message %s handled %d times", k, c)
		}
	}
	if sizes[0] != 1 {
		t.Fatalf("first batch %d messages, want the one published", sizes[0])
	}
	if len(sizes) > 20 {
		t.Fatalf("the burst of %d took %d batches (%v): it should be taken in large ones", burst, len(sizes)-1, sizes[:20])
	}
}

// After a large batch (a storm), the next one waits up to Linger to fill,
// so messages arriving a few at a time are still handled many per batch;
// after a small one, a batch is handled as soon as it is taken.
func TestConsumeBatchesLingersAfterALargeBatch(t *testing.T) {
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	next := 0
	publish := func(n int) {
		msgs := make([]bus.Message, 0, n)
		for ; n > 0; n-- {
			msgs = append(msgs, bus.Message{Subject: bus.IngestSubject("default", "test"), ID: fmt.Sprint(next), Data: []byte(fmt.Sprint(next))})
			next++
		}
		if _, err := b.Publish(ctx, msgs...); err != nil {
			t.Error(err)
		}
	}
	const maxBatch = 100
	batches := make(chan int, 16)
	handled := make(chan struct{})
	publish(5) // ready before the consumer starts: one batch
	cc, err := b.ConsumeBatches(ctx, bus.ConsumerConfig{
		Stream: bus.StreamIngest, Durable: "linger", MaxAckPending: 4096,
		Linger: 30 * time.Second, LingerFrom: 40,
	}, maxBatch, func(ctx context.Context, batch []jetstream.Msg) error {
		batches <- len(batch)
		select {
		case <-handled:
		case <-ctx.Done():
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	defer cancel() // first: a failed test's handler is not left waiting
	take := func(want int, why string) {
		t.Helper()
		select {
		case n := <-batches:
			if n != want {
				t.Fatalf("batch of %d messages, want %d: %s", n, want, why)
			}
		case <-ctx.Done():
			t.Fatalf("no batch: %s", why)
		}
	}
	take(5, "below LingerFrom, nothing to wait for")
	publish(3)
	handled <- struct{}{}
	take(3, "the batch before was small: no lingering")
	publish(50)
	handled <- struct{}{}
	take(50, "a backlog, taken as it is")
	// Ready now: 10. Without lingering the next batch would be these; it
	// waits for the 90 that fill it, published in pieces after it began.
	publish(10)
	handled <- struct{}{}
	for range 9 {
		publish(10)
	}
	take(maxBatch, "after a large batch, the next fills while it lingers")
	close(handled)
}

// A failed batch is redelivered whole; a message the handler terminated is not.
func TestConsumeBatchesRedeliversFailedBatch(t *testing.T) {
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		if _, err := b.Publish(ctx, bus.Message{Subject: bus.IngestSubject("default", "test"), ID: fmt.Sprint(i), Data: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	calls := map[string]int{}
	failed := false
	done := make(chan struct{})
	cc, err := b.ConsumeBatches(ctx, bus.ConsumerConfig{Stream: bus.StreamIngest, Durable: "retry", NakDelay: 50 * time.Millisecond}, 16,
		func(_ context.Context, batch []jetstream.Msg) error {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range batch {
				calls[string(m.Data())]++
				if string(m.Data()) == "1" {
					_ = m.TermWithReason("poison")
				}
			}
			if !failed {
				failed = true
				return errors.New("commit failed")
			}
			if calls["0"] >= 2 && calls["2"] >= 2 {
				select {
				case <-done:
				default:
					close(done)
				}
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("failed batch not redelivered: %v", calls)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["1"] != 1 {
		t.Fatalf("terminated message handled %d times, want 1", calls["1"])
	}
}

// BenchmarkConsumeBatchesTrickle: from publishing one message to its batch
// handler running, on a consumer that has caught up with the stream (the
// engine under a steady trickle of alerts).
func BenchmarkConsumeBatchesTrickle(b *testing.B) {
	bs := bustest.New(b)
	ctx := context.Background()
	got := make(chan struct{}, 1)
	cc, err := bs.ConsumeBatches(ctx, bus.ConsumerConfig{Stream: bus.StreamIngest, Durable: "trickle", MaxAckPending: 4096}, 512,
		func(_ context.Context, batch []jetstream.Msg) error {
			for range batch {
				got <- struct{}{}
			}
			return nil
		})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	msg := bus.Message{Subject: bus.IngestSubject("default", "test"), Data: []byte("x")}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		msg.ID = fmt.Sprint(i)
		if _, err := bs.Publish(ctx, msg); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}
