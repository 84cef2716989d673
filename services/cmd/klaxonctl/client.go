package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Metadata the admin API reads (services/admin; not imported so the CLI
// does not link the server).
const (
	tenantHeader    = "x-scope-orgid"
	authHeader      = "authorization"
	tailReadyHeader = "x-klaxon-tail"
	// tailTenantHeader: the tenant the server tails (admin.TailTenantHeader).
	tailTenantHeader = "x-klaxon-tenant"
)

// globals are the flags every admin-API command shares.
type globals struct {
	addr    string
	tenant  string
	token   string
	output  string
	timeout time.Duration
	color   string
	stdout  io.Writer
	stderr  io.Writer
}

// adminCommand is one admin-API verb: it runs with a connection and
// returns an error that fail turns into a helpful message.
type adminCommand func(ctx context.Context, g *globals, conn *grpc.ClientConn) error

// registerAdmin adds the admin-API command groups (alerts, silence, rules
// reload|status, slo, deliveries, dlq, tail, health) and the global flags to app.
// The returned dispatch runs cmd if it is one of them.
func registerAdmin(app *kingpin.Application, rules *kingpin.CmdClause, stdout, stderr io.Writer) func(cmd string) (code int, ok bool) {
	g := &globals{stdout: stdout, stderr: stderr}
	app.Flag("addr", "Address of klaxon's gRPC admin API.").Envar("KLAXON_ADDR").Default("127.0.0.1:9096").StringVar(&g.addr)
	app.Flag("tenant", "Tenant to act for (X-Scope-OrgID); '*' spans every tenant where allowed (admin tokens).").Envar("KLAXON_TENANT").StringVar(&g.tenant)
	app.Flag("token", "Bearer token (needed when klaxon runs with --auth).").Envar("KLAXON_TOKEN").StringVar(&g.token)
	app.Flag("output", "Output format.").Short('o').Default("table").EnumVar(&g.output, "table", "json")
	app.Flag("timeout", "Deadline of each call (not of tail).").Default("30s").DurationVar(&g.timeout)
	app.Flag("color", "Colour tail output: auto (on a terminal), always, never.").Default("auto").EnumVar(&g.color, "auto", "always", "never")

	cmds := map[string]adminCommand{}
	add := func(c *kingpin.CmdClause, f adminCommand) { cmds[c.FullCommand()] = f }
	registerAlerts(app, add)
	registerSilences(app, add)
	registerRuleAdmin(rules, add)
	registerSLO(app, add)
	registerDeliveries(app, add)
	registerTail(app, add)
	registerHealth(app, add)

	return func(cmd string) (int, bool) {
		f, ok := cmds[cmd]
		if !ok {
			return 0, false
		}
		return g.run(f), true
	}
}

func (g *globals) run(f adminCommand) int {
	conn, err := grpc.NewClient(g.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return inv(g.metadata(ctx), method, req, reply, cc, opts...)
		}),
		grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, s grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return s(g.metadata(ctx), desc, cc, method, opts...)
		}),
	)
	if err != nil {
		fmt.Fprintf(g.stderr, "klaxonctl: --addr %s: %v\n", g.addr, err)
		return 2
	}
	defer conn.Close()
	// Ctrl-C ends a tail cleanly and cancels any other call.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := f(ctx, g, conn); err != nil {
		return g.fail(err)
	}
	return 0
}

// call bounds a unary call by --timeout.
func (g *globals) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, g.timeout)
}

func (g *globals) metadata(ctx context.Context) context.Context {
	var kv []string
	if g.tenant != "" {
		kv = append(kv, tenantHeader, g.tenant)
	}
	if g.token != "" {
		kv = append(kv, authHeader, "Bearer "+g.token)
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// fail prints err as an operator would want to read it and returns the
// exit code: 1 for a failed call, 2 for bad usage.
func (g *globals) fail(err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(g.stderr, "klaxonctl:", ue.msg)
		return 2
	}
	st, ok := status.FromError(err)
	if !ok {
		fmt.Fprintln(g.stderr, "klaxonctl:", err)
		return 1
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		if strings.Contains(msg, "connection refused") || strings.Contains(msg, "connect:") ||
			strings.Contains(msg, "no such host") || strings.Contains(msg, "produced zero addresses") {
			fmt.Fprintf(g.stderr, "klaxonctl: cannot reach klaxon at %s: is `klaxon run` running? (%s)\n", g.addr, msg)
			return 1
		}
		fmt.Fprintf(g.stderr, "klaxonctl: klaxon at %s is unavailable: %s\n", g.addr, msg)
	case codes.Unauthenticated:
		fmt.Fprintf(g.stderr, "klaxonctl: not authenticated: %s (pass --token or set KLAXON_TOKEN)\n", msg)
	case codes.PermissionDenied:
		fmt.Fprintf(g.stderr, "klaxonctl: permission denied: %s (check --tenant)\n", msg)
	case codes.Unimplemented:
		fmt.Fprintf(g.stderr, "klaxonctl: not available: %s\n", msg)
	case codes.DeadlineExceeded:
		fmt.Fprintf(g.stderr, "klaxonctl: no answer from %s within --timeout=%s: %s\n", g.addr, g.timeout, msg)
	default:
		fmt.Fprintf(g.stderr, "klaxonctl: %s\n", msg)
	}
	return 1
}

// usageError is a mistake in the command line found after parsing.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }
