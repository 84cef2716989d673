// Package harness starts real Klaxon processes and real peers for end-to-end
// tests, on loopback ports, and stops them when the test ends.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binary builds (once per test binary) and returns the path of a command of
// the services module, e.g. "klaxon" or "klaxonctl".
func Binary(t testing.TB, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "klaxon-e2e-bin")
		if buildErr != nil {
			return
		}
		_, file, _, _ := runtime.Caller(0)
		services := filepath.Join(filepath.Dir(file), "..", "..", "services")
		cmd := exec.Command("go", "build", "-o", buildDir+"/", "./cmd/klaxon", "./cmd/klaxonctl")
		cmd.Dir = services
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, name)
}

// FreeAddr returns a loopback address with a free port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Klaxon is a running klaxon process.
type Klaxon struct {
	t        testing.TB
	Args     []string
	HTTP     string
	GRPC     string
	NATS     string // embedded server's listen address, if any
	Rules    string
	Data     string
	cmd      *exec.Cmd
	log      *bytes.Buffer
	earlier  []string // logs of runs before a restart
	exited   chan struct{}
	extraEnv []string
}

// KlaxonOptions configure StartKlaxon.
type KlaxonOptions struct {
	Rules string // rules dir (required)
	Data  string // data dir; a temp dir if empty
	// NATSListen exposes the embedded server to other processes.
	NATSListen bool
	// NATSURL dials an external NATS instead of embedding one.
	NATSURL string
	Target  string
	Extra   []string
	Env     []string
}

// StartKlaxon runs `klaxon run` and waits until /readyz answers 200.
func StartKlaxon(t testing.TB, o KlaxonOptions) *Klaxon {
	t.Helper()
	if o.Data == "" {
		o.Data = t.TempDir()
	}
	k := &Klaxon{t: t, HTTP: FreeAddr(t), GRPC: FreeAddr(t), Rules: o.Rules, Data: o.Data, extraEnv: o.Env}
	k.Args = []string{"run", "--rules", o.Rules, "--data", o.Data, "--http", k.HTTP, "--grpc", k.GRPC, "--log.level", "debug"}
	if o.Target != "" {
		k.Args = append(k.Args, "--target", o.Target)
	}
	switch {
	case o.NATSURL != "":
		k.Args = append(k.Args, "--nats", o.NATSURL)
	case o.NATSListen:
		k.NATS = FreeAddr(t)
		k.Args = append(k.Args, "--nats.listen", k.NATS)
	default:
		k.Args = append(k.Args, "--nats.listen", "")
	}
	k.Args = append(k.Args, o.Extra...)
	k.Start()
	t.Cleanup(k.Stop)
	return k
}

// Start (re)starts the process with the same arguments and data.
func (k *Klaxon) Start() {
	k.t.Helper()
	if k.log != nil && k.log.Len() > 0 {
		// A killed run's log says what it did before the crash: keep it
		// for the failure report.
		k.earlier = append(k.earlier, k.Log())
	}
	k.log = &bytes.Buffer{}
	k.cmd = exec.Command(Binary(k.t, "klaxon"), k.Args...)
	k.cmd.Env = append(os.Environ(), k.extraEnv...)
	w := &lockedWriter{buf: k.log}
	k.cmd.Stdout, k.cmd.Stderr = w, w
	if err := k.cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	k.exited = make(chan struct{})
	go func(c *exec.Cmd, ch chan struct{}) { _ = c.Wait(); close(ch) }(k.cmd, k.exited)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-k.exited:
			k.t.Fatalf("klaxon exited during start:\n%s", k.Log())
		default:
		}
		resp, err := http.Get("http://" + k.HTTP + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	k.t.Fatalf("klaxon not ready after 60s:\n%s", k.Log())
}

// Kill sends SIGKILL: no shutdown hooks, no flushing — a crash.
func (k *Klaxon) Kill() {
	if k.cmd == nil || k.cmd.Process == nil {
		return
	}
	_ = k.cmd.Process.Signal(syscall.SIGKILL)
	<-k.exited
}

// Stop terminates gracefully (SIGTERM), then kills after 10 s.
func (k *Klaxon) Stop() {
	if k.cmd == nil || k.cmd.Process == nil {
		return
	}
	select {
	case <-k.exited:
		return
	default:
	}
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.exited:
	case <-time.After(10 * time.Second):
		k.Kill()
	}
	if t, ok := k.t.(*testing.T); ok && t.Failed() {
		for i, l := range k.earlier {
			t.Logf("klaxon log (run %d of %d, before a restart):\n%s", i+1, len(k.earlier)+1, l)
		}
		t.Logf("klaxon log:\n%s", k.Log())
	}
}

// Exited is closed once the process has exited.
func (k *Klaxon) Exited() <-chan struct{} { return k.exited }

// Signal sends sig to the process.
func (k *Klaxon) Signal(sig os.Signal) { _ = k.cmd.Process.Signal(sig) }

// Log returns what the process printed so far.
func (k *Klaxon) Log() string {
	lockedMu.Lock()
	defer lockedMu.Unlock()
	return k.log.String()
}

// URL returns the HTTP base URL.
func (k *Klaxon) URL() string { return "http://" + k.HTTP }

// Post sends body to path and returns the status code.
func (k *Klaxon) Post(path, body string, headers ...string) (int, string) {
	k.t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, k.URL()+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

var lockedMu sync.Mutex

type lockedWriter struct{ buf *bytes.Buffer }

func (w *lockedWriter) Write(p []byte) (int, error) {
	lockedMu.Lock()
	defer lockedMu.Unlock()
	return w.buf.Write(p)
}

// Eventually polls cond every 20 ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyWhy(t, timeout, what, cond, nil)
}

// EventuallyWhy is Eventually with why, asked once on a timeout, saying what
// is still lacking: a failure on a CI machine then says which items went
// missing, not only that some did.
func EventuallyWhy(t testing.TB, timeout time.Duration, what string, cond func() bool, why func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			if why != nil {
				t.Fatalf("timed out after %s waiting for %s; still lacking: %s", timeout, what, why())
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WriteRules writes files (relative path → content) under a new rules dir.
func WriteRules(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// LogBuffer is a goroutine-safe buffer for process output.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
