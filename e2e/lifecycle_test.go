package e2e

import (
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// SIGTERM ends klaxon within its shutdown budget while a `klaxonctl tail`
// stream is open (a rolling deploy during someone's tail). The gRPC server's
// graceful stop waited for the stream, which ends only when its client goes:
// klaxon never exited, and the pod was SIGKILLed with the embedded NATS
// server not shut down.
func TestSIGTERMWithATailOpenExits(t *testing.T) {
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})
	out, _ := startTail(t, k.GRPC)
	go func() { _, _ = io.Copy(io.Discard, out) }()
	k.Signal(syscall.SIGTERM)
	select {
	case <-k.Exited():
	case <-time.After(20 * time.Second): // the 10 s shutdown budget, and slack
		t.Fatalf("klaxon still running 20 s after SIGTERM with a tail open:\n%s", k.Log())
	}
	if strings.Contains(k.Log(), "still open at the shutdown deadline") {
		t.Errorf("the shutdown waited out its deadline for the tail instead of ending it:\n%s", k.Log())
	}
}

// A `klaxonctl tail` follows klaxon across a restart (a rolling deploy), as
// stern follows pods: it says it lost the server, reconnects, and shows what
// comes in afterwards. It ended with "unavailable" at every restart.
func TestTailFollowsARestart(t *testing.T) {
	sink := harness.NewSink(t)
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo(sink.URL())})
	k := harness.StartKlaxon(t, harness.KlaxonOptions{Rules: rules})
	out, stderr := startTail(t, k.GRPC)
	seen := &harness.LogBuffer{}
	go func() { _, _ = io.Copy(seen, out) }()
	k.Signal(syscall.SIGTERM)
	<-k.Exited()
	k.Start()
	harness.Eventually(t, 20*time.Second, "the tail to reconnect", func() bool {
		return strings.Contains(stderr.String(), "reconnecting") && strings.Count(stderr.String(), "tailing tenant") == 2
	})
	if code, body := k.Post("/api/v2/alerts", `[{"labels":{"alertname":"AfterRestart"}}]`); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	harness.Eventually(t, 20*time.Second, "the alert posted after the restart in the tail", func() bool {
		return strings.Contains(seen.String(), "AfterRestart")
	})
}

// A SIGHUP while klaxon is still starting (here: its NATS unreachable, so
// it keeps retrying) does not kill it: Go's default action for SIGHUP is to
// exit, and the handler was installed only once everything had started, so
// a `systemctl reload` during a slow start killed the process.
func TestSIGHUPDuringStartupDoesNotKill(t *testing.T) {
	rules := harness.WriteRules(t, map[string]string{"default/klaxon.yml": routeAllTo("http://127.0.0.1:1/")})
	out := &harness.LogBuffer{}
	cmd := exec.Command(harness.Binary(t, "klaxon"), "run", "--rules", rules, "--data", t.TempDir(),
		"--http", harness.FreeAddr(t), "--grpc", harness.FreeAddr(t), "--nats", "nats://127.0.0.1:1")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	retries := func() int { return strings.Count(out.String(), "retrying") }
	harness.Eventually(t, 30*time.Second, "klaxon retrying its NATS", func() bool { return retries() >= 1 })
	_ = cmd.Process.Signal(syscall.SIGHUP)
	n := retries()
	harness.Eventually(t, 30*time.Second, "klaxon retrying again after the SIGHUP", func() bool {
		select {
		case <-exited:
			t.Fatalf("klaxon exited on a SIGHUP during startup:\n%s", out.String())
		default:
		}
		return retries() > n
	})
}
