// Package admin serves Klaxon's gRPC admin API (proto/klaxon/admin/v1):
// alerts and a live tail, silences, rules, SLOs, deliveries and dead letters.
//
// It sits above every other service: it reads the bus (INGEST, AUDIT and DLQ
// streams), the rules holder, and whatever state stores the engine and SLO
// services expose. A store that is not wired answers codes.Unimplemented —
// the API never invents data it does not have.
package admin

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// Config wires the server to the rest of Klaxon. Bus and Rules are required;
// every other store is optional and its RPCs answer Unimplemented when nil.
type Config struct {
	Bus   *bus.Bus
	Rules *ruleset.Holder
	// Reload reloads the rules (klaxon run passes its own, which also updates
	// the reload metrics and logs); nil calls Rules.Reload.
	Reload func(why string) error
	// Tenants enables auth: bearer tokens are checked against it. Nil
	// disables auth (tenant from x-scope-orgid, "default" if absent).
	Tenants *ruleset.Tenants
	// Alerts is the engine's alert state.
	Alerts Alerts
	// Silences is the engine's silence store.
	Silences Silences
	// SLOs computes SLO status and reports.
	SLOs SLOs
	// DefaultTimeout bounds unary calls that carry no deadline (default 30s).
	DefaultTimeout time.Duration
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Server implements every admin service.
type Server struct {
	adminv1.UnimplementedAlertServiceServer
	adminv1.UnimplementedSilenceServiceServer
	adminv1.UnimplementedRuleServiceServer
	adminv1.UnimplementedSLOServiceServer
	adminv1.UnimplementedDeliveryServiceServer

	cfg     Config
	log     *slog.Logger
	metrics *metrics
	// draining is closed by Drain: open tails end, so a shutdown does not
	// wait out its deadline for clients that never hang up.
	draining  chan struct{}
	drainOnce sync.Once
}

// Drain ends every open tail with Unavailable ("shutting down"), the
// status klaxonctl reconnects on; call it before GracefulStop.
func (s *Server) Drain() {
	if s == nil {
		return
	}
	s.drainOnce.Do(func() { close(s.draining) })
}

// New builds the server. reg receives klaxon_admin_* metrics.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if cfg.Bus == nil || cfg.Rules == nil {
		return nil, errors.New("admin: Bus and Rules are required")
	}
	if cfg.DefaultTimeout == 0 {
		cfg.DefaultTimeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Reload == nil {
		cfg.Reload = func(string) error { return cfg.Rules.Reload() }
	}
	return &Server{cfg: cfg, log: log, metrics: newMetrics(reg), draining: make(chan struct{})}, nil
}

// ServerOptions are the interceptors (metrics, logging, deadline, auth) to
// pass to grpc.NewServer. They apply to every service on that server, so
// health and reflection are counted too; auth skips them (probes and
// grpcurl must work without a token).
func (s *Server) ServerOptions() []grpc.ServerOption {
	if s == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.observeUnary, s.deadlineUnary, s.authUnary),
		grpc.ChainStreamInterceptor(s.observeStream, s.authStream),
	}
}

// Register adds every admin service to gs.
func (s *Server) Register(gs grpc.ServiceRegistrar) {
	adminv1.RegisterAlertServiceServer(gs, s)
	adminv1.RegisterSilenceServiceServer(gs, s)
	adminv1.RegisterRuleServiceServer(gs, s)
	adminv1.RegisterSLOServiceServer(gs, s)
	adminv1.RegisterDeliveryServiceServer(gs, s)
}

// deadlineUnary bounds calls without a deadline, so a stuck bus read cannot
// hold a handler forever; a client's own deadline always wins.
func (s *Server) deadlineUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.DefaultTimeout)
		defer cancel()
	}
	return h(ctx, req)
}
