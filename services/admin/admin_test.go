package admin_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	"github.com/klaxon-sh/klaxon/services/admin"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

const validRules = `route:
  receiver: sink
receivers:
  - name: sink
    webhook_configs:
      - url: http://127.0.0.1:9/hook
  - name: oncall
`

// env is a running admin server on a loopback port with a real bus.
type env struct {
	t     *testing.T
	bus   *bus.Bus
	rules string
	reg   *prometheus.Registry
	conn  *grpc.ClientConn
	srv   *admin.Server
}

func start(t *testing.T, configure func(*admin.Config)) *env {
	t.Helper()
	e := &env{t: t, bus: bustest.New(t), rules: t.TempDir(), reg: prometheus.NewRegistry()}
	writeRule(t, e.rules, "default/klaxon.yml", validRules)
	writeRule(t, e.rules, "team-a/klaxon.yml", validRules)
	holder, err := ruleset.NewHolder(e.rules)
	if err != nil {
		t.Fatal(err)
	}
	cfg := admin.Config{Bus: e.bus, Rules: holder}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := admin.New(cfg, bustest.Logger(t), e.reg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	gs := grpc.NewServer(srv.ServerOptions()...)
	srv.Register(gs)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(gs.Stop)
	e.conn, err = grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.conn.Close() })
	return e
}

func writeRule(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ctx returns a call context for tenant with an optional bearer token.
func ctx(t *testing.T, tenant, token string) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	var kv []string
	if tenant != "" {
		kv = append(kv, admin.TenantHeader, tenant)
	}
	if token != "" {
		kv = append(kv, admin.AuthHeader, "Bearer "+token)
	}
	return metadata.AppendToOutgoingContext(c, kv...)
}

func (e *env) publish(subject string, m proto.Message) uint64 {
	e.t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.bus.Publish(context.Background(), bus.Message{Subject: subject, Data: data})
	if err != nil {
		e.t.Fatal(err)
	}
	return res[0].Seq
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want code %v", err, code)
	}
}

func TestStoresNotWiredAnswerUnimplemented(t *testing.T) {
	e := start(t, nil)
	c := ctx(t, "", "")
	_, err := adminv1.NewAlertServiceClient(e.conn).ListAlerts(c, &adminv1.ListAlertsRequest{})
	wantCode(t, err, codes.Unimplemented)
	_, err = adminv1.NewAlertServiceClient(e.conn).GetAlert(c, &adminv1.GetAlertRequest{Fingerprint: "x"})
	wantCode(t, err, codes.Unimplemented)
	_, err = adminv1.NewSilenceServiceClient(e.conn).ListSilences(c, &adminv1.ListSilencesRequest{})
	wantCode(t, err, codes.Unimplemented)
	_, err = adminv1.NewSilenceServiceClient(e.conn).CreateSilence(c, &adminv1.CreateSilenceRequest{})
	wantCode(t, err, codes.Unimplemented)
	_, err = adminv1.NewSilenceServiceClient(e.conn).ExpireSilence(c, &adminv1.ExpireSilenceRequest{Id: "x"})
	wantCode(t, err, codes.Unimplemented)
	_, err = adminv1.NewSLOServiceClient(e.conn).GetSLOStatus(c, &adminv1.GetSLOStatusRequest{})
	wantCode(t, err, codes.Unimplemented)
	_, err = adminv1.NewSLOServiceClient(e.conn).GetSLOReport(c, &adminv1.GetSLOReportRequest{})
	wantCode(t, err, codes.Unimplemented)
}
