package policy

import (
	"bytes"
	"testing"
	"time"
)

// TestRecordPending: a derived alert waiting to be published survives the
// KV round trip, and a record without one is encoded exactly as before it
// existed (replicas of the previous version still read it).
func TestRecordPending(t *testing.T) {
	r := record{Labels: map[string]string{"pod": "web-1"}}
	for i := 0; i < 4; i++ {
		r.Add(Occurrence{At: t0.Add(time.Duration(i) * time.Minute), ID: uint64(i)}, 3)
	}
	plain := r.marshal()
	r.Pending = []byte("envelope")
	withPending := r.marshal()
	if !bytes.HasPrefix(withPending, plain) {
		t.Fatal("Pending is not a trailing section")
	}
	var got record
	if err := got.unmarshal(withPending); err != nil || string(got.Pending) != "envelope" || got.Labels["pod"] != "web-1" || len(got.Recent) != 4 {
		t.Fatalf("round trip: %v, %+v", err, got)
	}
	if err := got.unmarshal(plain); err != nil || got.Pending != nil {
		t.Fatalf("without Pending: %v, pending %q", err, got.Pending)
	}
	if err := got.unmarshal(withPending[:len(withPending)-1]); err == nil {
		t.Fatal("a truncated Pending decoded")
	}
}
