package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
)

func TestTTLBucketConflictsAndExpiry(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	kv, err := b.TTLKV(ctx, "test_ttl")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Write(ctx, "k", []byte("v1"), 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Write(ctx, "k", []byte("x"), 0, time.Hour); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("create over existing key: %v", err)
	}
	if _, err := kv.Write(ctx, "k", []byte("v2"), rev, time.Hour); err != nil {
		t.Fatalf("update at current revision: %v", err)
	}
	if _, err := kv.Write(ctx, "k", []byte("v3"), rev, time.Hour); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("update at stale revision: %v", err)
	}
	v, _, err := kv.Read(ctx, "k")
	if err != nil || string(v) != "v2" {
		t.Fatalf("read %q %v", v, err)
	}
	if _, err := kv.Write(ctx, "short", []byte("x"), 0, time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, _, err := kv.Read(ctx, "short")
		if err != nil {
			t.Fatal(err)
		}
		if v == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("key with a 1s TTL still there after 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
