package main

import (
	"context"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"google.golang.org/grpc"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
)

func registerSLO(app *kingpin.Application, add func(*kingpin.CmdClause, adminCommand)) {
	slo := app.Command("slo", "Service level objectives: budgets, burn rates, reports.")

	status := slo.Command("status", "Current SLI, error budget and burn rates.")
	sreq := &adminv1.GetSLOStatusRequest{}
	status.Arg("name", "One SLO (default all).").StringVar(&sreq.Name)
	add(status, func(ctx context.Context, g *globals, conn *grpc.ClientConn) error {
		ctx, cancel := g.call(ctx)
		defer cancel()
		resp, err := adminv1.NewSLOServiceClient(conn).GetSLOStatus(ctx, sreq)
		if err != nil {
			return err
		}
		if g.output == "json" {
			return printJSON(g.stdout, resp)
		}
		t := newTable(g.stdout, "NAME", "OBJECTIVE", "PERIOD", "SLI", "BUDGET USED", "BUDGET LEFT", "BURNING")
		for _, s := range resp.GetSlos() {
			var burning []string
			for _, b := range s.GetBurnRates() {
				if b.GetFiring() {
					burning = append(burning, b.GetSeverity()+"("+b.GetLongWindow()+"/"+b.GetShortWindow()+")")
				}
			}
			t.row(s.GetName(), s.GetObjective()+"%", s.GetPeriod(), pct(s.GetSli()), pct(s.GetBudgetConsumed()), pct(s.GetBudgetRemaining()),
				strings.Join(burning, ","))
		}
		return t.flush()
	})

	report := slo.Command("report", "Achieved SLI over the period and calendar windows.")
	rreq := &adminv1.GetSLOReportRequest{}
	var period string
	report.Arg("name", "One SLO (default all).").StringVar(&rreq.Name)
	report.Flag("period", "Window: rolling (the SLO's period), week, month, year (default all).").EnumVar(&period, "rolling", "week", "month", "year")
	add(report, func(ctx context.Context, g *globals, conn *grpc.ClientConn) error {
		rreq.Window = map[string]adminv1.ReportWindow{
			"rolling": adminv1.ReportWindow_REPORT_WINDOW_PERIOD,
			"week":    adminv1.ReportWindow_REPORT_WINDOW_WEEKLY,
			"month":   adminv1.ReportWindow_REPORT_WINDOW_MONTHLY,
			"year":    adminv1.ReportWindow_REPORT_WINDOW_ANNUALLY,
		}[period]
		ctx, cancel := g.call(ctx)
		defer cancel()
		resp, err := adminv1.NewSLOServiceClient(conn).GetSLOReport(ctx, rreq)
		if err != nil {
			return err
		}
		if g.output == "json" {
			return printJSON(g.stdout, resp)
		}
		t := newTable(g.stdout, "NAME", "WINDOW", "START", "END", "OBJECTIVE", "SLI", "MET", "BUDGET USED", "BUDGET LEFT")
		for _, r := range resp.GetReports() {
			met := "no"
			if r.GetMet() {
				met = "yes"
			}
			t.row(r.GetName(), strings.ToLower(strings.TrimPrefix(r.GetWindow().String(), "REPORT_WINDOW_")), ts(r.GetStart()), ts(r.GetEnd()),
				r.GetObjective()+"%", pct(r.GetSli()), met, pct(r.GetBudgetConsumed()), pct(r.GetBudgetRemaining()))
		}
		return t.flush()
	})
}

func pct(s string) string {
	if s == "" {
		return ""
	}
	return s + "%"
}
