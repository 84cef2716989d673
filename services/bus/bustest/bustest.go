// Package bustest starts a real embedded JetStream for tests.
package bustest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/services/bus"
)

// New opens a bus on an in-process embedded server with storage in a
// temporary directory, closed when the test ends.
func New(t testing.TB) *bus.Bus {
	t.Helper()
	return NewAt(t, t.TempDir())
}

// NewAt opens a bus whose JetStream files live in dir, so a test can close it
// and open another on the same data (a restart).
func NewAt(t testing.TB, dir string) *bus.Bus {
	t.Helper()
	return open(t, bus.Config{DataDir: dir, Name: t.Name()})
}

// NewWithMaxPayload opens a bus as New does on a server that takes
// messages of at most maxPayload bytes (an external server's default is
// 1 MiB; the embedded one's 8 MiB).
func NewWithMaxPayload(t testing.TB, maxPayload int32) *bus.Bus {
	t.Helper()
	return open(t, bus.Config{DataDir: t.TempDir(), Name: t.Name(), MaxPayload: maxPayload})
}

func open(t testing.TB, cfg bus.Config) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, cfg, Logger(t))
	if err != nil {
		t.Fatalf("open bus: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// Logger discards logs unless the test runs with -v.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
