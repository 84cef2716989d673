package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/admin"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// server is a running admin API on a loopback port with a real bus.
type server struct {
	addr  string
	bus   *bus.Bus
	rules string
}

func startServer(t *testing.T, configure ...func(*admin.Config)) *server {
	t.Helper()
	s := &server{bus: bustest.New(t), rules: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(s.rules, "default"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.rules, "default", "klaxon.yml"),
		[]byte("route:\n  receiver: sink\nreceivers:\n  - name: sink\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	holder, err := ruleset.NewHolder(s.rules)
	if err != nil {
		t.Fatal(err)
	}
	cfg := admin.Config{Bus: s.bus, Rules: holder}
	for _, f := range configure {
		f(&cfg)
	}
	srv, err := admin.New(cfg, bustest.Logger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(srv.ServerOptions()...)
	srv.Register(gs)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(gs.Stop)
	s.addr = l.Addr().String()
	return s
}

func (s *server) publish(t *testing.T, subject string, m proto.Message) {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.bus.Publish(context.Background(), bus.Message{Subject: subject, Data: data}); err != nil {
		t.Fatal(err)
	}
}

// ctl runs klaxonctl in-process against s.
func (s *server) ctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"--addr", s.addr}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// golden compares got with testdata/name.golden (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

var at = time.Date(2026, 11, 24, 8, 30, 0, 0, time.UTC)

func notification(receiver string, status klaxonv1.AlertStatus) *klaxonv1.Notification {
	return &klaxonv1.Notification{
		Tenant: "default", Receiver: receiver, GroupKey: `{}:{alertname="DiskFull"}`,
		GroupLabels: map[string]string{"alertname": "DiskFull"},
		Alerts: []*klaxonv1.Alert{{
			Labels: map[string]string{"alertname": "DiskFull", "instance": "db-1"}, Status: status,
			StartsAt: timestamppb.New(at.Add(-time.Hour)), Fingerprint: "a1b2c3",
		}},
		Status: status, CreatedAt: timestamppb.New(at), IdempotencyKey: "idem-" + receiver,
	}
}

func TestDeliveriesAndDeadLettersGolden(t *testing.T) {
	s := startServer(t)
	s.publish(t, bus.AuditSubject("default"), &klaxonv1.AuditRecord{
		Notification: notification("sink", klaxonv1.AlertStatus_ALERT_STATUS_FIRING), Integration: "webhook[0]",
		Outcome: "success", At: timestamppb.New(at),
	})
	s.publish(t, bus.AuditSubject("default"), &klaxonv1.AuditRecord{
		Notification: notification("pager", klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED), Integration: "pagerduty[0]",
		Outcome: "failed", Error: "400 Bad Request: invalid routing key", At: timestamppb.New(at.Add(time.Minute)),
	})
	s.publish(t, bus.DLQSubject("default", "pager"), &klaxonv1.DeadLetter{
		Notification: notification("pager", klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED), Reason: "client_error",
		Error: "400 Bad Request: invalid routing key", Attempts: 1, FailedAt: timestamppb.New(at.Add(time.Minute)),
	})

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"deliveries-list.table", []string{"deliveries", "list"}},
		{"deliveries-list.json", []string{"-o", "json", "deliveries", "list"}},
		{"deliveries-list-failed.table", []string{"deliveries", "list", "--outcome", "failed"}},
		{"dlq-list.table", []string{"dlq", "list"}},
		{"dlq-list.json", []string{"dlq", "list", "--output=json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := s.ctl(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, tc.name, stableDLQ(out))
		})
	}

	// A letter superseded by its group's newer notification (the notifier
	// marks it so in the notification log) is reported and skipped; the
	// next one is replayed.
	s.publish(t, bus.DLQSubject("default", "sink"), &klaxonv1.DeadLetter{
		Notification: notification("sink", klaxonv1.AlertStatus_ALERT_STATUS_FIRING), Reason: "server_error",
		Error: "503 Service Unavailable", Attempts: 5, FailedAt: timestamppb.New(at),
	})
	nflog, err := s.bus.KV(context.Background(), bus.BucketNotifyLog, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nflog.Put(context.Background(), "idem-sink.webhook-0", []byte("superseded 2026-12-04T10:00:00Z by idem-next")); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := s.ctl(t, "dlq", "replay", "2", "1")
	if code != 0 || out != "replayed 1: default/pager {alertname=\"DiskFull\"}\n" ||
		!strings.Contains(errOut, "not replayed 2: ") || !strings.Contains(errOut, "superseded") {
		t.Fatalf("replay: exit %d, %q, %q", code, out, errOut)
	}
	code, _, errOut = s.ctl(t, "dlq", "replay", "1")
	if code != 1 || !strings.Contains(errOut, "no such dead letter") {
		t.Fatalf("second replay: exit %d, %q", code, errOut)
	}
	code, _, errOut = s.ctl(t, "dlq", "replay", "abc")
	if code == 0 || !strings.Contains(errOut, `"abc" is not a DLQ sequence number`) || strings.Contains(errOut, "strconv") {
		t.Fatalf("replay abc: exit %d, %q", code, errOut)
	}
}

// stableDLQ masks the time JetStream stored a dead letter (not ours to fix).
func stableDLQ(s string) string {
	return regexp.MustCompile(`"stored_at": "[^"]+"`).ReplaceAllString(s, `"stored_at": "<stored>"`)
}

func TestRulesStatusGolden(t *testing.T) {
	s := startServer(t)
	mask := func(out string) string {
		out = strings.ReplaceAll(out, s.rules, "<rules>")
		return regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`).ReplaceAllString(out, "<time>")
	}
	code, out, errOut := s.ctl(t, "rules", "status")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden(t, "rules-status.table", mask(out))

	if err := os.WriteFile(filepath.Join(s.rules, "default", "broken.yml"), []byte("route: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = s.ctl(t, "rules", "reload")
	if code != 1 || !strings.Contains(errOut, "broken.yml:") {
		t.Fatalf("reload of broken rules: exit %d, %q", code, errOut)
	}
	code, out, _ = s.ctl(t, "--output", "json", "rules", "status")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	golden(t, "rules-status-failed.json", mask(out))
}

func TestHelpfulErrors(t *testing.T) {
	s := startServer(t)
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	var out, errOut bytes.Buffer
	if code := run([]string{"--addr", down, "deliveries", "list"}, &out, &errOut); code != 1 ||
		!strings.HasPrefix(errOut.String(), "klaxonctl: cannot reach klaxon at "+down+": is `klaxon run` running?") {
		t.Fatalf("server down: exit %d, %q", code, errOut.String())
	}
	code, _, stderr := s.ctl(t, "alerts", "list")
	if code != 1 || !strings.Contains(stderr, "not available") {
		t.Fatalf("alerts list without an engine store: exit %d, %q", code, stderr)
	}
	code, _, stderr = s.ctl(t, "tail", "a=~(")
	if code != 1 || !strings.Contains(stderr, "matcher") {
		t.Fatalf("bad matcher: exit %d, %q", code, stderr)
	}
}

// syncBuffer is written by a running command and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestTailJSONLines(t *testing.T) {
	s := startServer(t)
	pr, pw := io.Pipe()
	var errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"--addr", s.addr, "-o", "json", "tail", "--count", "2"}, pw, &errOut)
		pw.Close()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(errOut.String(), "tailing tenant") {
		if time.Now().After(deadline) {
			t.Fatalf("tail never became live: %q", errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.publish(t, bus.IngestSubject("default", "alerts-v2"), &klaxonv1.Envelope{
		Tenant: "default", Source: "alerts-v2", Id: "e1", ReceivedAt: timestamppb.New(at),
		Payload: &klaxonv1.Envelope_Alert{Alert: &klaxonv1.Alert{Labels: map[string]string{"alertname": "DiskFull"}, Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING}},
	})
	s.publish(t, bus.AuditSubject("default"), &klaxonv1.AuditRecord{
		Notification: notification("sink", klaxonv1.AlertStatus_ALERT_STATUS_FIRING), Integration: "webhook[0]", Outcome: "success", At: timestamppb.New(at),
	})
	sc := bufio.NewScanner(pr)
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not one JSON object per line: %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if code := <-done; code != 0 {
		t.Fatalf("tail exit %d: %s", code, errOut.String())
	}
	if len(lines) != 2 {
		t.Fatalf("got %d lines", len(lines))
	}
	env, _ := lines[0]["envelope"].(map[string]any)
	if env["source"] != "alerts-v2" || lines[0]["subject"] != "klaxon.in.default.alerts-v2" {
		t.Fatalf("first line: %v", lines[0])
	}
	del, _ := lines[1]["delivery"].(map[string]any)
	if del["outcome"] != "success" {
		t.Fatalf("second line: %v", lines[1])
	}
}

func TestTailLinesGolden(t *testing.T) {
	time.Local = time.UTC // lines show local time of day
	firing := notification("sink", klaxonv1.AlertStatus_ALERT_STATUS_FIRING)
	items := []*adminv1.TailResponse{
		{Item: &adminv1.TailResponse_Envelope{Envelope: &klaxonv1.Envelope{Tenant: "default", Source: "alerts-v2", ReceivedAt: timestamppb.New(at),
			Payload: &klaxonv1.Envelope_Alert{Alert: firing.Alerts[0]}}}},
		{Item: &adminv1.TailResponse_Envelope{Envelope: &klaxonv1.Envelope{Tenant: "default", Source: "eventbridge", ReceivedAt: timestamppb.New(at),
			Payload: &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{Kind: "cloudtrail", Labels: map[string]string{"eventName": "ConsoleLogin"}}}}}},
		{Item: &adminv1.TailResponse_Notification{Notification: firing}},
		{Item: &adminv1.TailResponse_Delivery{Delivery: &klaxonv1.AuditRecord{Notification: firing, Integration: "webhook[0]", Outcome: "success", At: timestamppb.New(at)}}},
		{Item: &adminv1.TailResponse_Delivery{Delivery: &klaxonv1.AuditRecord{Notification: notification("pager", klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED),
			Integration: "pagerduty[0]", Outcome: "failed", Error: "400 Bad Request", At: timestamppb.New(at)}}},
	}
	var plain, coloured strings.Builder
	for _, it := range items {
		plain.WriteString(tailLine(it, false) + "\n")
		coloured.WriteString(tailLine(it, true) + "\n")
	}
	golden(t, "tail.table", plain.String())
	golden(t, "tail-colour.table", coloured.String())
	if !strings.Contains(coloured.String(), red+"failed"+reset) || !strings.Contains(coloured.String(), green+"success"+reset) ||
		!strings.Contains(coloured.String(), red+"firing"+reset) {
		t.Fatalf("colours missing:\n%s", coloured.String())
	}
}
