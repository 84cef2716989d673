package main

import (
	"context"
	"fmt"

	"github.com/alecthomas/kingpin/v2"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// registerHealth adds `health`, a grpc_health_probe for the admin port:
// exit 0 only when the server answers SERVING.
func registerHealth(app *kingpin.Application, add func(*kingpin.CmdClause, adminCommand)) {
	health := app.Command("health", "Check the server with the standard gRPC health service (exit 0 when SERVING).")
	service := health.Arg("service", "Service name (default: the whole server).").String()
	add(health, func(ctx context.Context, g *globals, conn *grpc.ClientConn) error {
		ctx, cancel := g.call(ctx)
		defer cancel()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: *service})
		if err != nil {
			return err
		}
		if g.output == "json" {
			if err := printJSON(g.stdout, resp); err != nil {
				return err
			}
		} else {
			fmt.Fprintln(g.stdout, resp.GetStatus())
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("status %s", resp.GetStatus())
		}
		return nil
	})
}
