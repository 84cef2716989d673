package receiver

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/prometheus/client_golang/prometheus"
)

// benchBody is an API v2 postableAlerts array of n alerts shaped like
// Prometheus sends them.
func benchBody(n int) []byte {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"labels":{"alertname":"KubePodCrashLooping","namespace":"shop","pod":"web-%d","container":"app","severity":"warning","job":"kube-state-metrics","instance":"10.0.0.%d:8080"},`+
			`"annotations":{"summary":"Pod shop/web-%d is crash looping","runbook_url":"https://runbooks/KubePodCrashLooping"},`+
			`"startsAt":"2026-11-24T10:00:00Z","endsAt":"2026-11-24T10:05:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=x"}`, i, i%250, i)
	}
	b.WriteString("]")
	return []byte(b.String())
}

// BenchmarkDecodeAlertsV2: decoding and validating an API v2 body, per alert.
func BenchmarkDecodeAlertsV2(b *testing.B) {
	for _, n := range []int{1, 256} {
		body := benchBody(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, _, err := ParseAlertsV2(body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/alert")
		})
	}
}

// BenchmarkFingerprint: Alertmanager's label-set fingerprint of one alert.
func BenchmarkFingerprint(b *testing.B) {
	as, _, _ := ParseAlertsV2(benchBody(1))
	b.ReportAllocs()
	for b.Loop() {
		_ = Fingerprint(as[0].Labels)
	}
}

// BenchmarkEnvelope: building one alert's envelope (fingerprint, dedup id)
// and its protobuf encoding, then decoding it as a consumer does.
func BenchmarkEnvelope(b *testing.B) {
	as, _, _ := ParseAlertsV2(benchBody(1))
	req := &request{tenant: "default", now: time.Date(2026, 11, 24, 10, 1, 0, 0, time.UTC)}
	b.Run("build+encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := toEnvelope(req, SourceAlertsV2, &as[0]).MarshalVT(); err != nil {
				b.Fatal(err)
			}
		}
	})
	data, _ := toEnvelope(req, SourceAlertsV2, &as[0]).MarshalVT()
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var env klaxonv1.Envelope
			if err := env.UnmarshalVT(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// okPublisher acknowledges every message at once, as a healthy JetStream
// does, so BenchmarkServeAlertsV2 measures the receiver, not the bus.
type okPublisher struct{}

func (okPublisher) Publish(_ context.Context, msgs ...bus.Message) ([]bus.Result, error) {
	return make([]bus.Result, len(msgs)), nil
}

// BenchmarkServeAlertsV2: one single-alert POST /api/v2/alerts through the
// handler (auth off, metrics on, the group commit's hand-off included), from
// the request to the written response. The figures include building
// httptest's request and recorder (about a dozen of the allocations), not
// net/http's connection handling.
func BenchmarkServeAlertsV2(b *testing.B) {
	rc := New(Config{}, okPublisher{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	mux := http.NewServeMux()
	rc.Register(mux)
	body := benchBody(1)
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/api/v2/alerts", bytes.NewReader(body))
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}
