package ruleset

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher reloads the rules when files under the rules directory or any
// tenant directory change. Editors and `git pull` write several files in a
// burst, so changes are debounced into one reload.
type Watcher struct {
	dir      string
	reload   func(why string) error
	log      *slog.Logger
	debounce time.Duration
	ready    chan struct{}
}

// NewWatcher watches dir; reload is the same function SIGHUP and POST
// /-/reload call (it keeps the last good rules on error and sets the reload
// metrics). debounce <= 0 means 500ms.
func NewWatcher(dir string, reload func(why string) error, log *slog.Logger, debounce time.Duration) *Watcher {
	if debounce <= 0 {
		debounce = 500 * time.Millisecond
	}
	return &Watcher{dir: dir, reload: reload, log: log, debounce: debounce, ready: make(chan struct{})}
}

// Ready is closed once the directories are watched.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Run watches until ctx ends. Watching is a convenience beside SIGHUP and
// POST /-/reload: if it cannot start (the node's inotify instances or
// watches used up, the rules dir gone) it logs why and returns nil, and a
// tenant dir it cannot watch (lost+found on a volume) is skipped with a
// warning. Its error stopped the whole server, which then crash-looped.
func (w *Watcher) Run(ctx context.Context) error {
	off := func(err error) error {
		w.log.Warn("rules are not watched for changes; reload with SIGHUP or POST /-/reload", "err", err)
		return nil
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return off(fmt.Errorf("watch rules: %w", err))
	}
	defer fw.Close()
	if err := fw.Add(w.dir); err != nil {
		return off(fmt.Errorf("watch rules dir %s: %w", w.dir, err))
	}
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return off(fmt.Errorf("watch rules: %w", err))
	}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			if err := fw.Add(filepath.Join(w.dir, e.Name())); err != nil {
				w.log.Warn("rules watcher: cannot watch tenant dir; its changes need SIGHUP or POST /-/reload", "dir", e.Name(), "err", err)
			}
		}
	}
	close(w.ready)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.log.Warn("rules watcher error", "err", err)
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
				continue
			}
			// A new tenant directory: watch it too.
			if ev.Has(fsnotify.Create) && filepath.Dir(ev.Name) == filepath.Clean(w.dir) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() && !strings.HasPrefix(fi.Name(), ".") {
					if err := fw.Add(ev.Name); err != nil {
						w.log.Warn("rules watcher: cannot watch tenant dir", "dir", ev.Name, "err", err)
					}
				}
			}
			w.log.Debug("rules changed", "file", ev.Name, "op", ev.Op.String())
			timer.Reset(w.debounce)
			pending = true
		case <-timer.C:
			if pending {
				pending = false
				_ = w.reload("file change") // reload logs and records the outcome
			}
		}
	}
}
