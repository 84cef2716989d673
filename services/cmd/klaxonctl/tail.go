package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
)

func registerTail(app *kingpin.Application, add func(*kingpin.CmdClause, adminCommand)) {
	tail := app.Command("tail", "Follow everything that comes in and goes out, live (Ctrl-C to stop).")
	req := &adminv1.TailRequest{}
	var count int
	tail.Arg("matchers", "Label matchers (alert or event labels; a delivery's group or alert labels).").StringsVar(&req.Matchers)
	tail.Flag("source", "Only envelopes from these sources (repeatable).").StringsVar(&req.Sources)
	tail.Flag("receiver", "Only deliveries to these receivers (repeatable).").StringsVar(&req.Receivers)
	tail.Flag("no-ingest", "Leave out what comes in.").BoolVar(&req.NoIngest)
	tail.Flag("no-deliveries", "Leave out what goes out.").BoolVar(&req.NoDeliveries)
	tail.Flag("count", "Exit after this many items (0 = follow until interrupted).").Short('n').IntVar(&count)
	add(tail, func(ctx context.Context, g *globals, conn *grpc.ClientConn) error {
		colour := g.color == "always" || g.color == "auto" && os.Getenv("NO_COLOR") == "" && isTerminal(g.stdout)
		n, wait, followed := 0, time.Duration(0), false
		for {
			live, err := tailOnce(ctx, g, conn, req, count, &n, colour)
			followed = followed || live
			// A server that is not there to begin with is an error, as
			// for any command; one that goes away later is followed.
			if err = endOfTail(ctx, err); err == nil || !followed || status.Code(err) != codes.Unavailable {
				return err
			}
			// The server went away (a restart, a rolling update): follow
			// it, as stern does, rather than end. What was published
			// while no tail was open is not shown.
			if live {
				wait = 0
				fmt.Fprintf(g.stderr, "lost %s (%v); reconnecting, items in between are missed\n", g.addr, status.Convert(err).Message())
			}
			wait = min(max(2*wait, 250*time.Millisecond), 5*time.Second)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	})
}

// tailOnce opens one tail and prints its items until it ends or *n reaches
// count (0: no limit); live says the server confirmed it.
func tailOnce(ctx context.Context, g *globals, conn *grpc.ClientConn, req *adminv1.TailRequest, count int, n *int, colour bool) (live bool, err error) {
	st, err := adminv1.NewAlertServiceClient(conn).Tail(ctx, req)
	if err != nil {
		return false, err
	}
	// The header arrives once the server's subscriptions are live:
	// everything after this line on stderr will be shown.
	md, err := st.Header()
	if err != nil {
		return false, err
	}
	if len(md.Get(tailReadyHeader)) == 0 {
		// Ended without headers: the status says why.
		_, err := st.Recv()
		return false, err
	}
	tenant := g.tenant
	if v := md.Get(tailTenantHeader); len(v) > 0 && v[0] != "" {
		tenant = v[0] // the one the token implies when none was named
	}
	if tenant == "" {
		tenant = "(default)"
	}
	fmt.Fprintf(g.stderr, "tailing tenant %s at %s\n", tenant, g.addr)
	for ; count == 0 || *n < count; *n++ {
		item, err := st.Recv()
		if err != nil {
			return true, err
		}
		if g.output == "json" {
			b, err := jsonBytes(item, false)
			if err != nil {
				return true, err
			}
			fmt.Fprintf(g.stdout, "%s\n", b)
			continue
		}
		fmt.Fprintln(g.stdout, tailLine(item, colour))
	}
	return true, nil
}

// endOfTail makes an interrupted tail a success, and a server that went
// away an error.
func endOfTail(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled && ctx.Err() != nil {
		return nil
	}
	return err
}

const (
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	cyan   = "\x1b[36m"
	reset  = "\x1b[0m"
)

// tailLine renders one item on one line: IN for what came in, OUT for a
// notification routed to a receiver, DLV for a delivery attempt.
//
//	15:04:05 IN  default api-v2 firing {alertname="X"}
//	15:04:05 OUT default sink firing 1 alert(s) {alertname="X"}
//	15:04:05 DLV default sink webhook[0] success {}:{alertname="X"}
func tailLine(item *adminv1.TailResponse, colour bool) string {
	paint := func(c, s string) string {
		if !colour || c == "" || s == "" {
			return s
		}
		return c + s + reset
	}
	join := func(parts ...string) string {
		var out []string
		for _, p := range parts {
			if p != "" {
				out = append(out, p)
			}
		}
		return strings.Join(out, " ")
	}
	if rec := item.GetDelivery(); rec != nil {
		n := rec.GetNotification()
		c := map[string]string{"success": green, "retry": yellow, "failed": red, "dead_letter": red}[rec.GetOutcome()]
		line := join(clock(rec.GetAt(), item), "DLV", n.GetTenant(), n.GetReceiver(), rec.GetIntegration(),
			paint(c, rec.GetOutcome()), n.GetGroupKey())
		if rec.GetError() != "" {
			line += fmt.Sprintf(" error=%q", rec.GetError())
		}
		return line
	}
	if n := item.GetNotification(); n != nil {
		return join(clock(n.GetCreatedAt(), item), "OUT", n.GetTenant(), n.GetReceiver(),
			paint(statusColour(n.GetStatus()), statusWord(n.GetStatus())), fmt.Sprintf("%d alert(s)", len(n.GetAlerts())),
			labelString(n.GetGroupLabels()))
	}
	env := item.GetEnvelope()
	if a := env.GetAlert(); a != nil {
		return join(clock(env.GetReceivedAt(), item), "IN ", env.GetTenant(), env.GetSource(),
			paint(statusColour(a.GetStatus()), statusWord(a.GetStatus())), labelString(a.GetLabels()))
	}
	ev := env.GetEvent()
	return join(clock(env.GetReceivedAt(), item), "IN ", env.GetTenant(), env.GetSource(),
		paint(cyan, ev.GetKind()), ev.GetName(), labelString(ev.GetLabels()))
}

func statusColour(s klaxonv1.AlertStatus) string {
	switch s {
	case klaxonv1.AlertStatus_ALERT_STATUS_FIRING:
		return red
	case klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED:
		return green
	}
	return ""
}

// clock is the item's own time (received, delivered), else when the tail
// saw it, as local time of day.
func clock(t *timestamppb.Timestamp, item *adminv1.TailResponse) string {
	if t == nil {
		t = item.GetSeenAt()
	}
	return t.AsTime().Local().Format("15:04:05")
}
