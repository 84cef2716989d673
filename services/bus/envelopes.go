package bus

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/nats-io/nats.go"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
)

// BatchHeader marks an INGEST message that holds a klaxonv1.EnvelopeBatch;
// its value is the number of envelopes.
const BatchHeader = "Klaxon-Batch"

// MaxBatchBytes bounds one batch message well under NATS's default
// max_payload of 1 MiB, so batches also fit an external cluster.
const MaxBatchBytes = 512 << 10

// IngestMessages encodes envelopes (all of one tenant and source, as one
// request yields) for INGEST. Without batch, or for a single envelope, each
// is one message under its own id. With batch, several are batch messages
// of up to MaxBatchBytes, each under a hash of its envelopes' ids, so a
// retried request maps to the same messages and JetStream stores it once.
// counts[i] is how many envelopes msgs[i] holds.
func IngestMessages(envs []*klaxonv1.Envelope, batch bool) (msgs []Message, counts []int, err error) {
	if !batch || len(envs) == 1 {
		for _, e := range envs {
			data, err := e.MarshalVT()
			if err != nil {
				return nil, nil, fmt.Errorf("encode envelope: %w", err)
			}
			msgs = append(msgs, Message{Subject: IngestSubject(e.Tenant, e.Source), ID: e.Id, Data: data})
			counts = append(counts, 1)
		}
		return msgs, counts, nil
	}
	for start := 0; start < len(envs); {
		size, end := 0, start
		for end < len(envs) {
			sz := BatchSize(envs[end])
			if end > start && size+sz > MaxBatchBytes {
				break
			}
			size += sz
			end++
		}
		batch := &klaxonv1.EnvelopeBatch{Envelopes: envs[start:end]}
		data, err := batch.MarshalVT()
		if err != nil {
			return nil, nil, fmt.Errorf("encode envelope batch: %w", err)
		}
		h := sha256.New()
		for _, e := range batch.Envelopes {
			h.Write([]byte(e.Id))
			h.Write([]byte{0})
		}
		first := envs[start]
		msgs = append(msgs, Message{Subject: IngestSubject(first.Tenant, first.Source),
			ID: "b-" + hex.EncodeToString(h.Sum(nil)[:16]), Data: data, Count: end - start})
		counts = append(counts, end-start)
		start = end
	}
	return msgs, counts, nil
}

// BatchSize is what e adds to a batch message: its size plus its field tag
// and length prefix (at most 6 bytes; 8 to be safe).
func BatchSize(e *klaxonv1.Envelope) int { return e.SizeVT() + 8 }

// DecodeEnvelopes decodes an INGEST message: one envelope, or the
// envelopes of a batch (header BatchHeader).
func DecodeEnvelopes(h nats.Header, data []byte) ([]*klaxonv1.Envelope, error) {
	if h.Get(BatchHeader) == "" {
		env := new(klaxonv1.Envelope)
		if err := env.UnmarshalVT(data); err != nil {
			return nil, fmt.Errorf("decode envelope: %w", err)
		}
		return []*klaxonv1.Envelope{env}, nil
	}
	var b klaxonv1.EnvelopeBatch
	if err := b.UnmarshalVT(data); err != nil {
		return nil, fmt.Errorf("decode envelope batch: %w", err)
	}
	return b.Envelopes, nil
}
