package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// The next collection comes at the larger of the floor and what GOGC=75
// gives: Go's goal is the larger of live + (live + roots) × GOGC/100 and
// 4 MiB × GOGC/100.
func TestGCPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live, roots, floor uint64
		want               int
	}{
		{0, 0, 128 * mib, defaultGOGC},
		{100 * mib, 0, 128 * mib, defaultGOGC}, // 175 MiB ≥ the floor
		{64 * mib, 0, 128 * mib, 100},
		{32 * mib, 0, 128 * mib, 300},
		{1 * mib, 0, 128 * mib, 3200},                 // the runtime's minimum, 4 MiB × 32, is the floor
		{2 * mib, 2 * mib, 256 * mib, 6350},           // 2 + 4 × 63.5 = 256 MiB
		{100 * mib, 10 * mib, 128 * mib, defaultGOGC}, // 100 + 110 × 0.75 ≥ the floor
	} {
		if got := gcPercent(tc.live, tc.roots, tc.floor); got != tc.want {
			t.Errorf("gcPercent(%d MiB live, %d MiB roots, %d MiB floor) = %d, want %d", tc.live/mib, tc.roots/mib, tc.floor/mib, got, tc.want)
		}
	}
}

// Under a memory limit the floor is at most a quarter of it.
func TestHeapFloorUnderAMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct{ floor, limit, want int64 }{
		{256 * mib, math.MaxInt64, 256 * mib}, // no GOMEMLIMIT
		{256 * mib, 2048 * mib, 256 * mib},
		{256 * mib, 512 * mib, 128 * mib},
		{0, 512 * mib, 0},
	} {
		if got := heapFloor(tc.floor, tc.limit); got != tc.want {
			t.Errorf("heapFloor(%d MiB, limit %d) = %d MiB, want %d MiB", tc.floor/mib, tc.limit, got/mib, tc.want/mib)
		}
	}
}

// klaxon run collects at GOGC=75 with a heap floor unless the operator
// set GOGC, which it then leaves alone.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))

	t.Setenv("GOGC", "")
	stop := tuneGC(0)
	if got := gogc(); got != defaultGOGC {
		t.Errorf("GOGC unset, no floor: GC percent %d, want %d", got, defaultGOGC)
	}
	stop()

	// A test binary's live heap is a few MB: a 1 GiB floor raises the
	// percentage once a collection has run.
	stop = tuneGC(1 << 30)
	deadline := time.Now().Add(10 * time.Second)
	for gogc() <= defaultGOGC {
		if time.Now().After(deadline) {
			t.Fatalf("GC percent still %d after collections, want the floor applied", gogc())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	// The runtime's goal is the floor, not above it by the stacks and
	// globals scaled by the raised percentage.
	goal := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(goal)
	if g := goal[0].Value.Uint64(); g > 1<<30*102/100 || g < 1<<30*98/100 {
		t.Errorf("heap goal %d MiB with a 1024 MiB floor", g>>20)
	}
	stop()
	runtime.GC() // the tuner's last cleanup sees stop and does not re-arm

	t.Setenv("GOGC", "200")
	debug.SetGCPercent(200) // what the runtime read from GOGC at start
	tuneGC(1 << 30)
	runtime.GC()
	if got := gogc(); got != 200 {
		t.Errorf("GOGC=200: GC percent %d, want 200 kept", got)
	}
}
