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
