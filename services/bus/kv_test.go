package bus_test

import (
	"context"
	"errors"
	"strings"
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

// A key past MaxKeyBytes fails with ErrKeyTooLong before anything is sent:
// sent, a subject past the server's control line made it close the
// connection for good. The other writes of a WriteMany go through.
func TestTTLBucketRefusesKeysPastMaxKeyBytes(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	kv, err := b.TTLKV(ctx, "test_keys")
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("k", 5000)
	if _, _, err := kv.Read(ctx, long); !errors.Is(err, bus.ErrKeyTooLong) {
		t.Fatalf("read: %v, want ErrKeyTooLong", err)
	}
	if _, err := kv.Write(ctx, long, []byte("v"), 0, 0); !errors.Is(err, bus.ErrKeyTooLong) {
		t.Fatalf("write: %v, want ErrKeyTooLong", err)
	}
	revs, errs := kv.WriteMany(ctx, []bus.KVWrite{{Key: "a", Value: []byte("1")}, {Key: long, Value: []byte("2")}, {Key: "c", Value: []byte("3")}})
	if errs[0] != nil || errs[2] != nil || revs[0] == 0 || revs[2] == 0 || !errors.Is(errs[1], bus.ErrKeyTooLong) {
		t.Fatalf("write many: revs %v errs %v, want a and c written and the long key refused", revs, errs)
	}
	if err := b.Alive(); err != nil {
		t.Fatal(err)
	}
	if v, _, err := kv.Read(ctx, "c"); err != nil || string(v) != "3" {
		t.Fatalf("read c: %q %v", v, err)
	}
}

// Alive reports a connection the server closed for a protocol error (here a
// subject past its control line), which nats.go does not reconnect: the
// process has to be restarted (/healthz fails).
func TestAliveReportsAConnectionTheServerClosed(t *testing.T) {
	b := bustest.New(t)
	if err := b.Alive(); err != nil {
		t.Fatal(err)
	}
	_ = b.NC.Publish(strings.Repeat("s", 5000), nil)
	_ = b.NC.Flush()
	deadline := time.Now().Add(10 * time.Second)
	for b.Alive() == nil {
		if time.Now().After(deadline) {
			t.Fatal("a connection the server closed is still reported alive")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A key that expired or was deleted can be created again by reading it and
// writing at the revision read: its marker (an expired key's, kept for
// LimitMarkerTTL; a delete's, kept for good) is the subject's last message,
// and a write expecting none conflicted with it, every time, until the
// marker went. A window policy's key idle past its TTL, then counted again,
// failed all its attempts for a minute.
func TestTTLBucketRecreatesExpiredAndDeletedKeys(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	kv, err := b.TTLKV(ctx, "test_recreate")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Write(ctx, "expired", []byte("v1"), 0, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Write(ctx, "deleted", []byte("v1"), 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "deleted"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, _, err := kv.Read(ctx, "expired")
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
	for _, key := range []string{"expired", "deleted"} {
		v, rev, err := kv.Read(ctx, key)
		if err != nil || v != nil {
			t.Fatalf("read %s: %q, %v; want absent", key, v, err)
		}
		if _, err := kv.Write(ctx, key, []byte("v2"), rev, time.Hour); err != nil {
			t.Fatalf("create %s again at the revision read (%d): %v", key, rev, err)
		}
		if v, _, err := kv.Read(ctx, key); err != nil || string(v) != "v2" {
			t.Fatalf("read %s after creating it again: %q, %v", key, v, err)
		}
	}
}
