package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/alecthomas/kingpin/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
)

func registerDeliveries(app *kingpin.Application, add func(*kingpin.CmdClause, adminCommand)) {
	del := app.Command("deliveries", "What was sent (the AUDIT stream).")
	list := del.Command("list", "Newest deliveries first, with their outcome.").Alias("ls")
	dreq := &adminv1.ListDeliveriesRequest{}
	list.Flag("limit", "At most this many.").Short('n').Default("50").Int32Var(&dreq.Limit)
	list.Flag("receiver", "Only deliveries to this receiver.").StringVar(&dreq.Receiver)
	list.Flag("outcome", "Only this outcome.").EnumVar(&dreq.Outcome, "success", "retry", "failed", "duplicate", "dead_letter")
	add(list, func(ctx context.Context, g *globals, conn *grpc.ClientConn) error {
		ctx, cancel := g.call(ctx)
		defer cancel()
		resp, err := adminv1.NewDeliveryServiceClient(conn).ListDeliveries(ctx, dreq)
		if err != nil {
			return err
		}
		if g.output == "json" {
			return printJSON(g.stdout, resp)
		}
		// Audit records carry the notification's keys, not its alerts.
		t := newTable(g.stdout, "SEQ", "AT", "TENANT", "RECEIVER", "INTEGRATION", "OUTCOME", "GROUP KEY", "ERROR")
		for _, d := range resp.GetDeliveries() {
			r := d.GetRecord()
			n := r.GetNotification()
			t.row(strconv.FormatUint(d.GetSeq(), 10), ts(r.GetAt()), n.GetTenant(), n.GetReceiver(), r.GetIntegration(),
				r.GetOutcome(), n.GetGroupKey(), r.GetError())
		}
		return t.flush()
	})

	dlq := app.Command("dlq", "Dead letters: notifications that exhausted their attempts.")
	dlist := dlq.Command("list", "Dead letters, oldest first.").Alias("ls")
	lreq := &adminv1.ListDeadLettersRequest{}
	dlist.Flag("receiver", "Only dead letters of this receiver.").StringVar(&lreq.Receiver)
	dlist.Flag("limit", "At most this many.").Short('n').Default("100").Int32Var(&lreq.Limit)
	add(dlist, func(ctx context.Context, g *globals, conn *grpc.ClientConn) error {
		ctx, cancel := g.call(ctx)
		defer cancel()
		resp, err := adminv1.NewDeliveryServiceClient(conn).ListDeadLetters(ctx, lreq)
		if err != nil {
			return err
		}
		if g.output == "json" {
			return printJSON(g.stdout, resp)
		}
		t := newTable(g.stdout, "SEQ", "FAILED", "TENANT", "RECEIVER", "ATTEMPTS", "REASON", "STATUS", "ALERTS", "GROUP", "ERROR")
		for _, d := range resp.GetDeadLetters() {
			l := d.GetLetter()
			n := l.GetNotification()
			t.row(strconv.FormatUint(d.GetSeq(), 10), ts(l.GetFailedAt()), n.GetTenant(), n.GetReceiver(),
				strconv.Itoa(int(l.GetAttempts())), l.GetReason(), statusWord(n.GetStatus()), strconv.Itoa(len(n.GetAlerts())),
				labelString(n.GetGroupLabels()), l.GetError())
		}
		return t.flush()
	})

	replay := dlq.Command("replay", "Send dead letters to their receivers again (and remove them from the DLQ).")
	// Strings, parsed here: kingpin's own parse error was strconv's.
	args := replay.Arg("seq", "DLQ sequence numbers (klaxonctl dlq list).").Required().Strings()
	add(replay, func(ctx context.Context, g *globals, conn *grpc.ClientConn) error {
		var seqs []uint64
		for _, a := range *args {
			seq, err := strconv.ParseUint(a, 10, 64)
			if err != nil || seq == 0 {
				return fmt.Errorf("%q is not a DLQ sequence number (the SEQ column of klaxonctl dlq list)", a)
			}
			seqs = append(seqs, seq)
		}
		dc := adminv1.NewDeliveryServiceClient(conn)
		for _, seq := range seqs {
			cctx, cancel := g.call(ctx)
			resp, err := dc.ReplayDeadLetter(cctx, &adminv1.ReplayDeadLetterRequest{Seq: seq})
			cancel()
			if status.Code(err) == codes.FailedPrecondition {
				// Superseded: its group's newer notification was delivered,
				// so there is nothing to send; the letter is gone. Not a
				// failure of the command, and the next seq is replayed.
				fmt.Fprintf(g.stderr, "not replayed %d: %s\n", seq, status.Convert(err).Message())
				continue
			}
			if err != nil {
				return err
			}
			if g.output == "json" {
				if err := printJSON(g.stdout, resp); err != nil {
					return err
				}
				continue
			}
			n := resp.GetNotification()
			fmt.Fprintf(g.stdout, "replayed %d: %s/%s %s\n", seq, n.GetTenant(), n.GetReceiver(), labelString(n.GetGroupLabels()))
		}
		return nil
	})
}
