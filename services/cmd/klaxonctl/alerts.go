package main

import (
	"context"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"google.golang.org/grpc"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
)

func registerAlerts(app *kingpin.Application, add func(*kingpin.CmdClause, adminCommand)) {
	alerts := app.Command("alerts", "Alerts the engine holds.").Alias("alert")
	list := alerts.Command("list", "List alerts; matchers like amtool's (alertname=Foo 'severity=~crit.*').").Alias("ls").Alias("query")
	req := &adminv1.ListAlertsRequest{}
	list.Arg("matchers", "Label matchers, all of which must match.").StringsVar(&req.Matchers)
	list.Flag("receiver", "Only alerts routed to this receiver.").StringVar(&req.Receiver)
	list.Flag("silenced", "Include silenced alerts.").BoolVar(&req.Silenced)
	list.Flag("inhibited", "Include inhibited alerts.").BoolVar(&req.Inhibited)
	list.Flag("resolved", "Include resolved alerts.").BoolVar(&req.Resolved)
	add(list, func(ctx context.Context, g *globals, conn *grpc.ClientConn) error {
		ctx, cancel := g.call(ctx)
		defer cancel()
		resp, err := adminv1.NewAlertServiceClient(conn).ListAlerts(ctx, req)
		if err != nil {
			return err
		}
		if g.output == "json" {
			return printJSON(g.stdout, resp)
		}
		t := newTable(g.stdout, "FINGERPRINT", "STATUS", "STARTS", "LABELS", "RECEIVERS", "SILENCED BY", "SUMMARY")
		for _, a := range resp.GetAlerts() {
			t.row(a.GetFingerprint(), statusWord(a.GetStatus()), ts(a.GetStartsAt()), labelString(a.GetLabels()),
				strings.Join(a.GetReceivers(), ","), strings.Join(a.GetSilencedBy(), ","), a.GetAnnotations()["summary"])
		}
		return t.flush()
	})
}
