package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/amapi"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/engine"
	"github.com/klaxon-sh/klaxon/services/heartbeat"
	"github.com/klaxon-sh/klaxon/services/notify"
	"github.com/klaxon-sh/klaxon/services/notify/receivers"
	"github.com/klaxon-sh/klaxon/services/policy"
	"github.com/klaxon-sh/klaxon/services/receiver"
	"github.com/klaxon-sh/klaxon/services/ruleset"
	slorunner "github.com/klaxon-sh/klaxon/services/slo/runner"
)

type runConfig struct {
	targets      []string
	rules        string
	data         string
	httpAddr     string
	grpcAddr     string
	natsURL      string
	natsListen   string
	natsReplicas int
	natsCreds    string
	auth         bool
	logLevel     string
	logFormat    string
	maxBody      int64
	minHeap      int64
	externalURL  string
	snsTopics    []string
	snsNoConfirm []string
	notify       notify.Config
	sloTick      time.Duration
}

// flag registers a flag that can also be set as KLAXON_<NAME>.
func flag(cmd *kingpin.CmdClause, name, help string) *kingpin.FlagClause {
	env := "KLAXON_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(name))
	return cmd.Flag(name, help).Envar(env)
}

func registerRunFlags(cmd *kingpin.CmdClause) *runConfig {
	c := &runConfig{}
	var targets string
	flag(cmd, "target", "Comma list of targets: all, receiver, engine, notifier, admin.").Default("all").StringVar(&targets)
	cmd.PreAction(func(*kingpin.ParseContext) error {
		c.targets = strings.Split(targets, ",")
		return nil
	})
	flag(cmd, "rules", "Rules directory: <dir>/<tenant>/*.yml.").Default("rules").StringVar(&c.rules)
	flag(cmd, "data", "Data directory of the embedded NATS server.").Default("data").StringVar(&c.data)
	flag(cmd, "http", "HTTP listen address (ingest, health, metrics).").Default("127.0.0.1:9095").StringVar(&c.httpAddr)
	flag(cmd, "grpc", "gRPC listen address (admin API).").Default("127.0.0.1:9096").StringVar(&c.grpcAddr)
	flag(cmd, "nats", "URL of an external NATS cluster; empty starts an embedded server.").Default("").StringVar(&c.natsURL)
	flag(cmd, "nats.listen", "Address the embedded NATS server listens on; empty = in-process only.").Default("127.0.0.1:4222").StringVar(&c.natsListen)
	flag(cmd, "nats.replicas", "Stream and KV replicas (0 = 1 embedded, 3 external).").Default("0").IntVar(&c.natsReplicas)
	flag(cmd, "nats.creds", "NATS credentials file for an external cluster.").Default("").StringVar(&c.natsCreds)
	flag(cmd, "auth", "Require bearer tokens from rules/tenants.yml.").BoolVar(&c.auth)
	flag(cmd, "log.level", "debug, info, warn, error.").Default("info").StringVar(&c.logLevel)
	flag(cmd, "log.format", "json or text.").Default("text").EnumVar(&c.logFormat, "json", "text")
	flag(cmd, "runtime.min-heap", "Heap size in bytes the collector lets a small heap reach before collecting (0: no floor; at most a quarter of GOMEMLIMIT; ignored when GOGC is set).").Default(fmt.Sprint(256 << 20)).Int64Var(&c.minHeap)
	flag(cmd, "http.max-body", "Maximum request body in bytes.").Default(fmt.Sprint(receiver.DefaultMaxBodyBytes)).Int64Var(&c.maxBody)
	flag(cmd, "web.external-url", "URL Klaxon is reachable at (links in notifications).").Default("").StringVar(&c.externalURL)
	flag(cmd, "sns.topic-arn", "Accept SNS messages only from these topics (repeatable).").StringsVar(&c.snsTopics)
	flag(cmd, "sns.no-auto-confirm", "Topic ARNs ('*' = all) whose subscriptions are not auto-confirmed.").StringsVar(&c.snsNoConfirm)
	flag(cmd, "slo.evaluation-interval", "How often SLO burn rates are evaluated.").Default("15s").DurationVar(&c.sloTick)
	flag(cmd, "notify.max-deliver", "Deliveries of a notification before it goes to the dead-letter queue.").Default("8").IntVar(&c.notify.MaxDeliver)
	flag(cmd, "notify.attempts", "In-process tries per delivery.").Default("3").IntVar(&c.notify.Attempts)
	flag(cmd, "notify.attempt-timeout", "Timeout of one delivery attempt.").Default("15s").DurationVar(&c.notify.AttemptTimeout)
	flag(cmd, "notify.min-backoff", "First retry delay (doubles, with jitter).").Default("200ms").DurationVar(&c.notify.MinBackoff)
	flag(cmd, "notify.max-backoff", "Longest retry delay.").Default("5m").DurationVar(&c.notify.MaxBackoff)
	flag(cmd, "notify.rate-limit", "Notifications per second per receiver (0 = unlimited).").Default("100").Float64Var(&c.notify.RateLimit)
	flag(cmd, "notify.burst", "Burst of the per-receiver rate limit.").Default("200").IntVar(&c.notify.Burst)
	flag(cmd, "notify.order-wait", "Longest a notification waits for its group's previous one to be dealt with.").Default("10m").DurationVar(&c.notify.OrderWait)
	return c
}

func (c *runConfig) has(target string) bool {
	for _, t := range c.targets {
		if t == target || t == "all" {
			return true
		}
	}
	return false
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
}

func runTargets(c *runConfig) error {
	log, err := newLogger(c.logLevel, c.logFormat)
	if err != nil {
		return err
	}
	for _, t := range c.targets {
		switch t {
		case "all", "receiver", "engine", "notifier", "admin":
		default:
			return fmt.Errorf("--target: unknown target %q", t)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP is caught from the start: Go's default for it is to exit, and a
	// `systemctl reload` during a slow start (NATS unreachable, a long
	// JetStream recovery) killed the process. One that comes before the
	// rules are being served is a reload of rules just loaded: ignored.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reloadOK := promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "klaxon_config_last_reload_successful", Help: "Whether the last rules reload succeeded.",
	})
	reloadTime := promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "klaxon_config_last_reload_success_timestamp_seconds", Help: "Time of the last successful rules reload.",
	})

	rules, err := ruleset.NewHolder(c.rules, ruleset.WithReceiverCheck(receivers.Unsupported))
	if err != nil {
		return err
	}
	reloadOK.Set(1)
	reloadTime.SetToCurrentTime()
	// With --auth, rules/tenants.yml (tokens and limits): every component
	// gets the same view of it, and a reload reads it again (a rotated or
	// new token without a restart); a tenants.yml that does not load fails
	// the reload and the last good one stays.
	var tenants *ruleset.Tenants
	tenantsFile := filepath.Join(c.rules, "tenants.yml")
	if c.auth {
		if tenants, err = ruleset.LoadTenants(tenantsFile); err != nil {
			return err
		}
	}
	reload := func(why string) error {
		// tenants.yml first: all or nothing, neither is applied if either fails.
		var n *ruleset.Tenants
		var err error
		if tenants != nil {
			n, err = ruleset.LoadTenants(tenantsFile)
		}
		if err == nil {
			err = rules.Reload()
		}
		if err == nil && n != nil {
			tenants.Replace(n)
		}
		if err != nil {
			reloadOK.Set(0)
			log.Error("rules reload failed", "trigger", why, "err", err)
			return err
		}
		reloadOK.Set(1)
		reloadTime.SetToCurrentTime()
		log.Info("rules reloaded", "trigger", why, "tenants", len(rules.Get().Tenants))
		return nil
	}

	b, err := bus.Open(ctx, bus.Config{
		URL: c.natsURL, DataDir: c.data, Listen: c.natsListen, Replicas: c.natsReplicas,
		CredsFile: c.natsCreds, Name: "klaxon-" + strings.Join(c.targets, "+"),
	}, log)
	if err != nil {
		return err
	}
	defer b.Close()

	var ext *url.URL
	if c.externalURL != "" {
		if ext, err = url.Parse(c.externalURL); err != nil {
			return fmt.Errorf("--web.external-url: %w", err)
		}
	} else {
		ext = &url.URL{Scheme: "http", Host: c.httpAddr}
	}

	var wg sync.WaitGroup
	errc := make(chan error, 8)
	goRun := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}

	mux := http.NewServeMux()
	if c.has("receiver") {
		var auth receiver.Authenticator
		var limiter receiver.Limiter
		if tenants != nil {
			auth = tenants
			limiter = &receiver.RateLimits{PerSecond: func(t string) float64 { return tenants.Limits(t).IngestPerSecond }}
		}
		rc := receiver.New(receiver.Config{
			MaxBodyBytes: c.maxBody,
			Auth:         auth,
			Limiter:      limiter,
			SNS:          receiver.SNSConfig{TopicARNs: c.snsTopics, NoAutoConfirm: c.snsNoConfirm},
			Known:        knownInRules(rules),
		}, b, log.With("target", "receiver"), reg)
		rc.Register(mux)
	}
	// Window policies and heartbeats keep their state in KV: every target can
	// serve their views (derived alerts link there); the engine runs them.
	pe, err := policy.New(ctx, policy.Config{ExternalURL: ext, NoConsumer: true}, b, rules, log.With("component", "policy"), reg)
	if err != nil {
		return err
	}
	pe.Register(mux, sloAuth(tenants))
	// Consumer: the "derived" consumer below feeds it beats; a heartbeat does
	// not fire while beats received before its deadline wait in it.
	hm, err := heartbeat.New(ctx, heartbeat.Config{ExternalURL: ext, NoConsumer: true, Consumer: "derived"}, b, rules, log.With("component", "heartbeat"), reg)
	if err != nil {
		return err
	}
	hm.Register(mux, sloAuth(tenants))
	// Silences live in KV; every target serves the Alertmanager API v2 (amtool)
	// from KV, the engine applies them.
	silences, groups, err := openSilencesAndGroups(ctx, b)
	if err != nil {
		return err
	}
	amCfg := amapi.Config{Groups: groups.Groups, Silences: silences, Rules: rules}
	if tenants != nil {
		amCfg.Auth = tenants
		amCfg.MaxSilences = func(t string) int { return tenants.Limits(t).MaxSilences }
	}
	amapi.New(amCfg, log.With("component", "amapi")).Register(mux)
	if c.has("engine") {
		opts := []engine.Option{engine.WithSilences(silences)}
		if tenants != nil {
			opts = append(opts, engine.WithAlertLimit(func(t string) int { return tenants.Limits(t).MaxActiveAlerts }))
		}
		e := engine.New(b, rules, log.With("target", "engine"), reg, opts...)
		goRun("engine", e.Run)
		goRun("policy", pe.Run)
		goRun("heartbeat", hm.Run)
	}
	// SLO counters live in KV: every target can serve their status; the
	// engine target evaluates them.
	sloRunner, err := slorunner.New(ctx, slorunner.Config{ExternalURL: ext, Tick: c.sloTick, NoConsumer: true}, b, rules, log.With("component", "slo"), reg)
	if err != nil {
		return err
	}
	sloRunner.Register(mux, sloAuth(tenants))
	if c.has("engine") {
		goRun("slo", sloRunner.Run)
		// One consumer feeds every derived-alert component, so each ingested
		// message is delivered and decoded once for all three.
		goRun("derived", func(ctx context.Context) error {
			// With no policy, heartbeat or SLO in any tenant's rules there is
			// nothing to count: messages are acknowledged undecoded (a reload
			// that adds one counts from then on, as it would anyway).
			skip := func(string) bool { return !rules.Get().Derived() }
			cc, err := b.ConsumeEnvelopes(ctx, bus.ConsumerConfig{Durable: "derived", MaxAckPending: 4096, Skip: skip},
				func(ctx context.Context, env *klaxonv1.Envelope) error {
					// Each component is idempotent, so a redelivery after one of
					// them failed is harmless to the others.
					return errors.Join(pe.Process(ctx, env), hm.Process(ctx, env), sloRunner.Process(ctx, env))
				})
			if err != nil {
				return err
			}
			<-ctx.Done()
			cc.Stop()
			return nil
		})
	}
	if c.has("notifier") {
		p, err := notify.NewPipeline(ctx, c.notify, b, rules, receivers.NewBuilder(ext, receivers.WithBus(b)).Build, log.With("target", "notifier"), reg)
		if err != nil {
			return err
		}
		goRun("notifier", p.Run)
	}

	healthz := func(w http.ResponseWriter, _ *http.Request) {
		// Liveness: only a NATS connection that will never come back (the
		// server closed it for a protocol error) fails it, so the process is
		// restarted; a server down and reconnecting fails /readyz only.
		if err := b.Alive(); err != nil {
			http.Error(w, "not alive: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}
	readyz := func(w http.ResponseWriter, r *http.Request) {
		if err := b.Ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if rules.Get() == nil {
			http.Error(w, "not ready: no rules loaded", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	}
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", readyz)
	// Alertmanager's own probe paths, so probes written for it keep working.
	mux.HandleFunc("GET /-/healthy", healthz)
	mux.HandleFunc("GET /-/ready", readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// Profiling, as Alertmanager and Prometheus expose it.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("POST /-/reload", adminOnly(tenants, func(w http.ResponseWriter, _ *http.Request) {
		if err := reload("http"); err != nil {
			// Alertmanager's answer (500), so reloaders that check it see the failure.
			http.Error(w, "failed to reload config: "+err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("reloaded\n"))
	}))

	hl, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		return fmt.Errorf("--http: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	goRun("http", func(context.Context) error {
		if err := srv.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})

	adm, err := newAdmin(c, tenants, b, rules, reload, slorunner.Admin{R: sloRunner}, silences, groups, log.With("target", "admin"), reg)
	if err != nil {
		return err
	}
	gs := grpc.NewServer(adm.ServerOptions()...)
	if adm != nil {
		adm.Register(gs)
	}
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	gl, err := net.Listen("tcp", c.grpcAddr)
	if err != nil {
		return fmt.Errorf("--grpc: %w", err)
	}
	goRun("grpc", func(context.Context) error { return gs.Serve(gl) })
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for name := range gs.GetServiceInfo() {
		// grpc_health_probe -service=klaxon.admin.v1.AlertService and
		// klaxonctl health SERVICE ask by service name.
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}

	goRun("rules-watcher", ruleset.NewWatcher(c.rules, reload, log.With("target", "rules"), 0).Run)
	select { // a SIGHUP during startup
	case <-hup:
	default:
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = reload("SIGHUP")
			}
		}
	}()

	log.Info("klaxon started", "targets", c.targets, "http", hl.Addr().String(), "grpc", gl.Addr().String(),
		"rules", c.rules, "nats", natsWhere(c))
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		log.Error("target failed", "err", runErr)
	}
	stop()
	hs.Shutdown()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	// Graceful, but within the same budget: a `klaxonctl tail` stream ends
	// only when its client goes, and GracefulStop waited for it for ever
	// (the pod was SIGKILLed, the embedded NATS server never shut down).
	adm.Drain() // open tails end now, and their clients reconnect elsewhere
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-shutdownCtx.Done():
		log.Warn("gRPC streams still open at the shutdown deadline; closing them")
		gs.Stop()
		<-stopped
	}
	wg.Wait()
	log.Info("klaxon stopped")
	return runErr
}

func natsWhere(c *runConfig) string {
	if c.natsURL != "" {
		return c.natsURL
	}
	if c.natsListen == "" {
		return "embedded (in-process)"
	}
	return "embedded on " + c.natsListen
}

// knownInRules tells the receiver which tenants, heartbeats and SLOs the
// current rules define (receiver.Config.Known).
func knownInRules(rules *ruleset.Holder) func(tenant, kind, name string) error {
	return func(tenant, kind, name string) error {
		t := rules.Tenant(tenant)
		if t == nil {
			return fmt.Errorf("tenant %q has no rules (no directory %s/ in the rules): nothing would route what it sends", tenant, tenant)
		}
		switch kind {
		case "heartbeat":
			if !slices.ContainsFunc(t.Heartbeats, func(h ruleset.Heartbeat) bool { return h.Name == name }) {
				return fmt.Errorf("no heartbeat %q in tenant %s's rules", name, tenant)
			}
		case "slo":
			i := slices.IndexFunc(t.SLOs, func(s ruleset.SLO) bool { return s.Name == name })
			if i < 0 {
				return fmt.Errorf("no SLO %q in tenant %s's rules", name, tenant)
			}
			if t.SLOs[i].Events == nil {
				return fmt.Errorf("SLO %q of tenant %s counts alerts (bad_alerts), not events: it takes no counts (give it events: {} for a ratio SLI)", name, tenant)
			}
		}
		return nil
	}
}
