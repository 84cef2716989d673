package bus_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
)

func alertEnvelopes(n int, annotation string) []*klaxonv1.Envelope {
	envs := make([]*klaxonv1.Envelope, n)
	for i := range envs {
		envs[i] = &klaxonv1.Envelope{Tenant: "default", Source: "api-v2", Id: fmt.Sprintf("id-%d", i),
			Payload: &klaxonv1.Envelope_Alert{Alert: &klaxonv1.Alert{Labels: map[string]string{"alertname": "A", "id": fmt.Sprint(i)},
				Annotations: map[string]string{"description": annotation}}}}
	}
	return envs
}

// Large requests are split so that no batch message exceeds what an
// external NATS cluster takes by default (max_payload 1 MiB); the split is
// deterministic, so a retried request maps to the same message ids.
func TestIngestMessagesSplitsBySize(t *testing.T) {
	envs := alertEnvelopes(3000, strings.Repeat("x", 1000)) // ~3 MB
	msgs, counts, err := bus.IngestMessages(envs, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) < 6 {
		t.Fatalf("%d messages for ~3 MB, want each under 512 KiB", len(msgs))
	}
	total := 0
	for i, m := range msgs {
		if len(m.Data) > 512<<10 || m.Count != counts[i] {
			t.Fatalf("message %d: %d bytes, count %d/%d", i, len(m.Data), m.Count, counts[i])
		}
		total += counts[i]
	}
	if total != len(envs) {
		t.Fatalf("messages hold %d envelopes, want %d", total, len(envs))
	}
	again, _, _ := bus.IngestMessages(envs, true)
	for i := range msgs {
		if msgs[i].ID != again[i].ID {
			t.Fatalf("message %d: id %s then %s for the same request", i, msgs[i].ID, again[i].ID)
		}
	}
	single, _, _ := bus.IngestMessages(envs[:3], false)
	if len(single) != 3 || single[0].ID != "id-0" || single[0].Count != 0 {
		t.Fatalf("without batch: one message per envelope under its own id, got %d", len(single))
	}
}

// Consumers see the envelopes of a batch one by one (ConsumeEnvelopes) or
// flattened into their batch (ConsumeEnvelopeBatches), each exactly once.
func TestBatchMessagesAreConsumedAsEnvelopes(t *testing.T) {
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, _, err := bus.IngestMessages(alertEnvelopes(700, "y"), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	one, batched := map[string]int{}, map[string]int{}
	seqs := map[uint64]int{} // stream sequence -> envelopes it carried
	c1, err := b.ConsumeEnvelopes(ctx, bus.ConsumerConfig{Durable: "one"}, func(_ context.Context, env *klaxonv1.Envelope) error {
		mu.Lock()
		one[env.Id]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Stop()
	c2, err := b.ConsumeEnvelopeBatches(ctx, bus.ConsumerConfig{Durable: "batched"}, 100, func(_ context.Context, envs []*klaxonv1.Envelope, sq []uint64) error {
		mu.Lock()
		for i, e := range envs {
			batched[e.Id]++
			seqs[sq[i]]++
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Stop()
	for {
		mu.Lock()
		done := len(one) == 700 && len(batched) == 700
		mu.Unlock()
		if done {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("consumed %d and %d of 700", len(one), len(batched))
		case <-time.After(10 * time.Millisecond):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range one {
		if n != 1 || batched[id] != 1 {
			t.Fatalf("%s consumed %d and %d times", id, n, batched[id])
		}
	}
	// Each envelope comes with the sequence of the message that carried it.
	if len(seqs) != len(msgs) || seqs[0] != 0 {
		t.Fatalf("envelopes came with %d stream sequences (%v), want the %d messages'", len(seqs), seqs, len(msgs))
	}
}

// A message Skip refuses is acknowledged without reaching the handler; once
// Skip lets messages through, they are handled as usual. Both envelope
// consumers honour it.
func TestConsumeEnvelopesAcknowledgesSkippedMessages(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprint("batched=", batched), func(t *testing.T) { testSkip(t, batched) })
	}
}

func testSkip(t *testing.T, batched bool) {
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	publish := func(envs []*klaxonv1.Envelope) {
		msgs, _, err := bus.IngestMessages(envs, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Publish(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	skipped := alertEnvelopes(5, "skipped")
	for _, e := range skipped {
		e.Id = "skipped-" + e.Id
	}
	publish(skipped)
	var skipping atomic.Bool
	skipping.Store(true)
	handled := make(chan string, 10)
	cfg := bus.ConsumerConfig{Durable: "skipper", Skip: func(string) bool { return skipping.Load() }}
	var cc *bus.Consumption
	var err error
	if batched {
		cc, err = b.ConsumeEnvelopeBatches(ctx, cfg, 100, func(_ context.Context, envs []*klaxonv1.Envelope, _ []uint64) error {
			for _, env := range envs {
				handled <- env.Id
			}
			return nil
		})
	} else {
		cc, err = b.ConsumeEnvelopes(ctx, cfg, func(_ context.Context, env *klaxonv1.Envelope) error {
			handled <- env.Id
			return nil
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	cons, err := b.JS.Consumer(ctx, bus.StreamIngest, "skipper")
	if err != nil {
		t.Fatal(err)
	}
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.AckFloor.Stream == 5 && info.NumAckPending == 0 && info.NumRedelivered == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("skipped messages not acknowledged: ack floor %d, %d pending, %d redelivered", info.AckFloor.Stream, info.NumAckPending, info.NumRedelivered)
		case <-time.After(10 * time.Millisecond):
		}
	}
	skipping.Store(false)
	publish(alertEnvelopes(1, "x"))
	select {
	case id := <-handled:
		if id != "id-0" {
			t.Fatalf("handled %q, want id-0 (the skipped ones must not reach the handler)", id)
		}
	case <-ctx.Done():
		t.Fatal("the envelope published once Skip let messages through was not handled")
	}
	select {
	case id := <-handled:
		t.Fatalf("handled %q as well", id)
	default:
	}
}
