package ruleset

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWatcherKeepsLastGoodRules(t *testing.T) {
	dir := t.TempDir()
	tdir := filepath.Join(dir, "acme")
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(tdir, "rules.yml")
	write := func(body string) {
		t.Helper()
		// Write-then-rename, as editors and git do.
		tmp := filepath.Join(tdir, ".tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write(okAM)
	h, err := NewHolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 16)
	reload := func(why string) error {
		err := h.Reload()
		results <- err
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := NewWatcher(dir, reload, slog.New(slog.NewTextHandler(io.Discard, nil)), 20*time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	old := h.Get()

	next := func() error {
		t.Helper()
		select {
		case err := <-results:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("no reload after a file change")
			return nil
		}
	}

	write(okAM + "  - name: a\n") // duplicate receiver: invalid
	err = next()
	if err == nil || !strings.Contains(err.Error(), `rules.yml:5:11: notification config name "a" is not unique`) {
		t.Fatalf("broken file: reload error %v", err)
	}
	if h.Get() != old || h.Status().Success {
		t.Fatal("a broken file replaced the last good rules")
	}

	write(okAM + "  - name: b\n")
	if err := next(); err != nil {
		t.Fatalf("fixed file: %v", err)
	}
	if h.Get() == old || !h.Status().Success || h.Tenant("acme").Receiver("b") == nil {
		t.Fatal("fixed file was not loaded")
	}

	// A new tenant directory is watched too.
	if err := os.MkdirAll(filepath.Join(dir, "beta"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := next(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "beta", "r.yml"), []byte(okAM), 0o644); err != nil {
		t.Fatal(err)
	}
	for h.Tenant("beta") == nil || h.Tenant("beta").Config == nil {
		if err := next(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A watcher that cannot start (here the rules dir is gone; on a busy node,
// the inotify limits) logs why and ends without an error: the server runs
// on, reloading on SIGHUP and POST /-/reload. Its error was a target's
// failure, which stopped the server.
func TestWatcherThatCannotWatchDoesNotFail(t *testing.T) {
	var log strings.Builder
	w := NewWatcher(filepath.Join(t.TempDir(), "gone"), func(string) error { return nil }, slog.New(slog.NewTextHandler(&log, nil)), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatalf("Run: %v, want nil (watching off, with a warning)", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run kept running without a dir to watch")
	}
	if !strings.Contains(log.String(), "not watched") {
		t.Fatalf("no warning logged: %q", log.String())
	}
}
