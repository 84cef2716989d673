package receiver

import (
	"fmt"
	"strings"
	"testing"
	"time"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
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
				if _, err := ParseAlertsV2(body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/alert")
		})
	}
}

// BenchmarkFingerprint: Alertmanager's label-set fingerprint of one alert.
func BenchmarkFingerprint(b *testing.B) {
	as, _ := ParseAlertsV2(benchBody(1))
	b.ReportAllocs()
	for b.Loop() {
		_ = Fingerprint(as[0].Labels)
	}
}

// BenchmarkEnvelope: building one alert's envelope (fingerprint, dedup id)
// and its protobuf encoding, then decoding it as a consumer does.
func BenchmarkEnvelope(b *testing.B) {
	as, _ := ParseAlertsV2(benchBody(1))
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
