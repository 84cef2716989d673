package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"google.golang.org/grpc"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
)

// registerRuleAdmin adds `rules reload` and `rules status` (the server's
// rules) beside `rules lint` and `rules test` (files on disk).
func registerRuleAdmin(rules *kingpin.CmdClause, add func(*kingpin.CmdClause, adminCommand)) {
	reload := rules.Command("reload", "Make the server reload its rules directory (invalid rules keep the last good ones).")
	add(reload, func(ctx context.Context, g *globals, conn *grpc.ClientConn) error {
		ctx, cancel := g.call(ctx)
		defer cancel()
		resp, err := adminv1.NewRuleServiceClient(conn).ReloadRules(ctx, &adminv1.ReloadRulesRequest{})
		if err != nil {
			return err
		}
		if g.output == "json" {
			return printJSON(g.stdout, resp)
		}
		fmt.Fprintf(g.stdout, "rules reloaded: version %d\n", resp.GetStatus().GetVersion())
		return printRuleTenants(g, resp.GetStatus())
	})

	status := rules.Command("status", "Which rule files the server runs and how its last reload went.")
	add(status, func(ctx context.Context, g *globals, conn *grpc.ClientConn) error {
		ctx, cancel := g.call(ctx)
		defer cancel()
		resp, err := adminv1.NewRuleServiceClient(conn).GetRulesStatus(ctx, &adminv1.GetRulesStatusRequest{})
		if err != nil {
			return err
		}
		if g.output == "json" {
			return printJSON(g.stdout, resp)
		}
		result := "success"
		if !resp.GetLastReloadSuccess() {
			result = "failed"
		}
		fmt.Fprintf(g.stdout, "dir:          %s\nversion:      %d\nloaded at:    %s\nlast reload:  %s at %s\n",
			resp.GetDir(), resp.GetVersion(), orDash(ts(resp.GetLoadedAt())), result, orDash(ts(resp.GetLastReloadAt())))
		if e := resp.GetLastReloadError(); e != "" {
			fmt.Fprintf(g.stdout, "reload error:\n  %s\n", strings.ReplaceAll(e, "\n", "\n  "))
		}
		fmt.Fprintln(g.stdout)
		return printRuleTenants(g, resp)
	})
}

func printRuleTenants(g *globals, st *adminv1.GetRulesStatusResponse) error {
	t := newTable(g.stdout, "TENANT", "FILES", "RECEIVERS", "POLICIES", "HEARTBEATS", "SLOS")
	for _, tr := range st.GetTenants() {
		// Files relative to the rules dir, which the header already names.
		files := make([]string, len(tr.GetFiles()))
		for i, f := range tr.GetFiles() {
			files[i] = strings.TrimPrefix(f, st.GetDir()+string(filepath.Separator))
		}
		t.row(tr.GetTenant(), strings.Join(files, ","), strings.Join(tr.GetReceivers(), ","),
			strconv.Itoa(int(tr.GetPolicies())), strconv.Itoa(int(tr.GetHeartbeats())), strconv.Itoa(int(tr.GetSlos())))
	}
	return t.flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
