package policy

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// BenchmarkWindowAdd is the pure cost of counting one occurrence.
func BenchmarkWindowAdd(b *testing.B) {
	b.ReportAllocs()
	var w Window
	i := 0
	for b.Loop() {
		i++
		w.Add(Occurrence{At: t0.Add(time.Duration(i) * time.Millisecond), ID: uint64(i)}, 3)
		_ = w.Above(t0.Add(time.Duration(i)*time.Millisecond), 3, 15*time.Minute)
	}
}

// BenchmarkKeyBytes reports the stored bytes of one active key (threshold 3,
// two key labels), the unit of window-policy memory and disk.
func BenchmarkKeyBytes(b *testing.B) {
	r := record{Labels: map[string]string{"namespace": "payments-prod", "pod": "checkout-7d9f8b6c4-x2x9z"}}
	for i := 0; i < 4; i++ {
		r.Add(Occurrence{At: t0.Add(time.Duration(i) * time.Minute), ID: uint64(i) * 0x9e3779b97f4a7c15}, 3)
	}
	r.FiringSince = t0
	var n int
	for b.Loop() {
		n = len(r.marshal())
	}
	b.ReportMetric(float64(n), "bytes/key")
}

func benchEvaluator(b *testing.B) *Evaluator {
	dir := b.TempDir()
	set := &ruleset.Set{Tenants: map[string]*ruleset.Tenant{"default": {Name: "default", Policies: []ruleset.Policy{{
		Name: "restarts", Key: []string{"pod"}, Threshold: 3, Window: ruleset.Duration(15 * time.Minute),
		Labels: map[string]string{"alertname": "FrequentRestarts"},
	}}}}}
	h := ruleset.NewStaticHolder(set)
	bb := bustest.NewAt(b, dir)
	e, err := New(context.Background(), Config{ExternalURL: &url.URL{Scheme: "http", Host: "x"}}, bb, h, bustest.Logger(b), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkCountOccurrence is one occurrence through KV (read, update with a
// revision check), per key, on the embedded JetStream.
func BenchmarkCountOccurrence(b *testing.B) {
	e := benchEvaluator(b)
	p := &e.rules.Get().Tenants["default"].Policies[0]
	ctx := context.Background()
	now := time.Now()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		labels := map[string]string{"pod": fmt.Sprintf("pod-%d", i%1000)}
		if err := e.count(ctx, "default", p, labels, Occurrence{At: now, ID: uint64(i)}, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecover100k measures how long a restarted replica takes to read
// 100k window keys back from KV.
func BenchmarkRecover100k(b *testing.B) {
	e := benchEvaluator(b)
	ctx := context.Background()
	now := time.Now()
	r := record{Labels: map[string]string{"pod": "x"}, Window: Window{FiringSince: now}}
	for i := 0; i < 4; i++ {
		r.Add(Occurrence{At: now.Add(time.Duration(i) * time.Second), ID: uint64(i)}, 3)
	}
	val := r.marshal()
	const keys = 100_000
	for i := 0; i < keys; i++ {
		if _, err := e.kv.Write(ctx, fmt.Sprintf("default.restarts.%016x", i), val, 0, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		e.at = map[string]*dueItem{}
		e.due = nil
		if err := e.Recover(ctx); err != nil {
			b.Fatal(err)
		}
		if e.Scheduled() != keys {
			b.Fatalf("recovered %d keys", e.Scheduled())
		}
	}
	b.ReportMetric(float64(keys), "keys")
}
