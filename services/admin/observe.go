package admin

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	tailing  prometheus.Gauge
	dropped  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "klaxon_admin_requests_total",
			Help: "Admin gRPC calls by method and status code.",
		}, []string{"method", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "klaxon_admin_request_duration_seconds",
			Help:    "Duration of admin gRPC calls (streams: their whole life).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"method"}),
		tailing: f.NewGauge(prometheus.GaugeOpts{
			Name: "klaxon_admin_tail_streams",
			Help: "Tail streams open now.",
		}),
		dropped: f.NewCounter(prometheus.CounterOpts{
			Name: "klaxon_admin_tail_dropped_total",
			Help: "Items a tail could not send because its client was too slow.",
		}),
	}
}

func (s *Server) observeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	s.observe(ctx, info.FullMethod, start, err)
	return resp, err
}

func (s *Server) observeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	err := h(srv, ss)
	s.observe(ss.Context(), info.FullMethod, start, err)
	return err
}

// observe counts and logs one finished call: Debug when it succeeded, Warn
// when it failed (the code says why without a stack).
func (s *Server) observe(ctx context.Context, method string, start time.Time, err error) {
	code := status.Code(err)
	d := time.Since(start)
	s.metrics.requests.WithLabelValues(method, code.String()).Inc()
	s.metrics.duration.WithLabelValues(method).Observe(d.Seconds())
	lvl := slog.LevelDebug
	if err != nil {
		lvl = slog.LevelWarn
	}
	s.log.Log(ctx, lvl, "admin call", "method", method, "code", code.String(), "duration", d, "err", err)
}
