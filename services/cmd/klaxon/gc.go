package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// defaultGOGC is the garbage collector's target when GOGC is not set. Like
// Prometheus (runtime.gogc, 75), Klaxon holds long-lived state in its heap,
// the groups and alerts of an alert storm: with Go's default of 100 the heap
// grows to twice what is live before a collection; at 75, to 1.75 times.
// Measured with 100k held alerts: 3.4–3.6 → 2.9–3.0 KB of RSS per alert,
// ingest and latency unchanged within the noise (README, Performance).
const defaultGOGC = 75

// tuneGC sets the collector's target unless the operator set GOGC: GOGC=75,
// and a heap floor. While little is live, the heap may grow to minHeap
// bytes before a collection, instead of to 1.75 times the live heap: a
// small heap under steady load (1,000 alerts/s, a few tens of MB live) was
// collected several times a second, and the collector's share of two cores
// showed in every latency percentile. Above minHeap/1.75 live, the floor
// does nothing. Under a memory limit (GOMEMLIMIT, which the Kubernetes
// manifests set from the container's limit) the floor is at most a quarter
// of it, so a small container is not filled with garbage; the limit still
// caps the heap.
// It returns a function that stops the tuning (tests).
func tuneGC(minHeap int64) (stop func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	debug.SetGCPercent(defaultGOGC)
	minHeap = heapFloor(minHeap, debug.SetMemoryLimit(-1))
	if minHeap <= 0 {
		return func() {}
	}
	t := &gcTuner{minHeap: uint64(minHeap), pct: defaultGOGC}
	t.arm()
	return func() { t.stopped.Store(true) }
}

// gcTuner re-targets the collector after each collection: a cleanup on an
// object nothing references runs once the collection that freed it is done.
type gcTuner struct {
	minHeap uint64
	pct     int // one tune runs at a time: the next is armed as it returns
	stopped atomic.Bool
}

func (t *gcTuner) arm() {
	// 16 bytes: smaller objects share a block with others and may never
	// be freed on their own.
	runtime.AddCleanup(new([16]byte), func(t *gcTuner) { t.tune() }, t)
}

func (t *gcTuner) tune() {
	if t.stopped.Load() {
		return
	}
	defer t.arm()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
	metrics.Read(s)
	for _, v := range s {
		if v.Value.Kind() != metrics.KindUint64 {
			return
		}
	}
	if pct := gcPercent(s[0].Value.Uint64(), s[1].Value.Uint64()+s[2].Value.Uint64(), t.minHeap); pct != t.pct {
		t.pct = pct
		debug.SetGCPercent(pct)
	}
}

// heapFloor is the floor to use under memory limit limit
// (math.MaxInt64: none).
func heapFloor(minHeap, limit int64) int64 {
	return min(minHeap, limit/4)
}

// gcPercent is the GOGC that puts the next collection at the larger of
// minHeap and what GOGC=75 gives. Go's heap goal is the larger of live +
// (live + roots) × GOGC/100, roots being the stacks and globals the last
// collection scanned, and its minimum heap, 4 MiB × GOGC/100. This once
// took only live into account: with 2-3 MB live in a fresh process the
// raised percentage put the minimum, and so the first collections, at
// ≈ 400 MB instead of 256 MiB, and RSS after a burst of 100k alerts kept
// much of that.
func gcPercent(live, roots, minHeap uint64) int {
	if live == 0 || live+(live+roots)*defaultGOGC/100 >= minHeap {
		return defaultGOGC
	}
	pct := min((minHeap-live)*100/(live+roots), minHeap*100/runtimeHeapMinimum)
	return int(max(pct, defaultGOGC))
}

// runtimeHeapMinimum is the runtime's minimum heap goal at GOGC=100
// (defaultHeapMinimum in runtime/mgcpacer.go); it scales with GOGC.
const runtimeHeapMinimum = 4 << 20
