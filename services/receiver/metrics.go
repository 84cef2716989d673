package receiver

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	bytes      *prometheus.CounterVec
	items      *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	publish    prometheus.Histogram
	group      prometheus.Histogram
	acks       *prometheus.CounterVec
	// acks' series, resolved once.
	ackOK, ackDuplicate, ackError prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_receiver_requests_total", Help: "Ingest HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "klaxon_receiver_request_duration_seconds", Help: "Ingest request latency including the JetStream ack.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
		bytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_receiver_request_bytes_total", Help: "Request body bytes read by endpoint.",
		}, []string{"endpoint"}),
		items: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_receiver_items_stored_total", Help: "Alerts and events stored in JetStream by endpoint.",
		}, []string{"endpoint"}),
		duplicates: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_receiver_items_duplicate_total", Help: "Items dropped by JetStream deduplication (retried POSTs; a retried alert request that shares a message with others is stored again instead, harmlessly).",
		}, []string{"endpoint"}),
		publish: f.NewHistogram(prometheus.HistogramOpts{
			Name: "klaxon_bus_publish_duration_seconds", Help: "Time from publish to the JetStream ack of one INGEST publish (a request's alerts, or a group of requests').",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1, 5, 10},
		}),
		group: f.NewHistogram(prometheus.HistogramOpts{
			Name: "klaxon_receiver_commit_group_requests", Help: "Requests whose alerts were stored by one INGEST publish (group commit of concurrent small requests).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}),
		acks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_bus_publish_acks_total", Help: "JetStream publish outcomes: ok, duplicate, error.",
		}, []string{"result"}),
	}
	m.ackOK = m.acks.WithLabelValues("ok")
	m.ackDuplicate = m.acks.WithLabelValues("duplicate")
	m.ackError = m.acks.WithLabelValues("error")
	return m
}
