package notify

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics of the delivery pipeline; names follow Alertmanager's
// (alertmanager_notifications_total → klaxon_notifications_total, ...).
type Metrics struct {
	Sent        *prometheus.CounterVec
	Failed      *prometheus.CounterVec
	Requests    *prometheus.CounterVec
	Latency     *prometheus.HistogramVec
	Suppressed  *prometheus.CounterVec
	DeadLetters *prometheus.CounterVec
	DLQDepth    prometheus.Gauge
	Held        *prometheus.CounterVec
	// BreakerWaits counts deliveries put back, without an attempt, because
	// their integration is failing (breaker.go).
	BreakerWaits *prometheus.CounterVec
	// RateLimitWaits counts notifications put off by their receiver's rate
	// limit for a second or more (Pipeline.takeToken).
	RateLimitWaits *prometheus.CounterVec
	// Deferred counts notifications deferred to wait a second or more off the
	// consumer (Pipeline.later).
	Deferred prometheus.Counter
}

// NewMetrics registers the pipeline metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		Sent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_notifications_total", Help: "Notifications delivered, by integration.",
		}, []string{"integration"}),
		Failed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_notifications_failed_total", Help: "Failed notification attempts, by integration and reason.",
		}, []string{"integration", "reason"}),
		Requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_notification_requests_total", Help: "Notification attempts, by integration.",
		}, []string{"integration"}),
		Latency: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "klaxon_notification_latency_seconds", Help: "Latency of notification attempts.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
		}, []string{"integration"}),
		Suppressed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_notifications_suppressed_total", Help: "Notifications not sent on purpose (duplicate, send_resolved false, dead_letter, superseded).",
		}, []string{"integration", "reason"}),
		DeadLetters: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_dead_letters_total", Help: "Notifications moved to the dead-letter queue.",
		}, []string{"receiver", "reason"}),
		Held: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_notifications_held_total", Help: "Deliveries put back because the group's previous notification was not yet dealt with, by integration.",
		}, []string{"integration"}),
		BreakerWaits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_notifications_breaker_waits_total", Help: "Deliveries put back without an attempt because their integration failed just now (one delivery probes it meanwhile), by integration.",
		}, []string{"integration"}),
		RateLimitWaits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_notifications_rate_limit_waits_total", Help: "Notifications put off, without an attempt, until their receiver's rate limit has a token for them, by receiver.",
		}, []string{"receiver"}),
		Deferred: f.NewCounter(prometheus.CounterOpts{
			Name: "klaxon_notifications_deferred_total", Help: "Notifications set aside to be delivered again in a second or more (a retry's backoff, a failing integration, a predecessor not yet sent), so that waiting does not hold up other notifications.",
		}),
		DLQDepth: f.NewGauge(prometheus.GaugeOpts{
			Name: "klaxon_dead_letters", Help: "Notifications currently in the dead-letter queue (all replicas, from the stream).",
		}),
	}
}
