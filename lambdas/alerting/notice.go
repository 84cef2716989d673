package alerting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Status says whether a Notice opens or closes a problem.
type Status string

// Notice statuses.
const (
	Firing   Status = "firing"
	Resolved Status = "resolved"
)

// Severities, as PagerDuty Events v2 names them; the other notifiers show them.
const (
	SeverityCritical = "critical"
	SeverityError    = "error"
	SeverityWarning  = "warning"
	SeverityInfo     = "info"
)

// ValidSeverity reports whether s is one of the four PagerDuty severities.
func ValidSeverity(s string) bool {
	switch s {
	case SeverityCritical, SeverityError, SeverityWarning, SeverityInfo:
		return true
	}
	return false
}

// Notice is what a fallback notifier sends when Klaxon cannot: one problem,
// rendered the same way for a pager, a chat channel and a mailbox.
type Notice struct {
	// Key identifies the problem; a resolve carries the key of its trigger.
	Key       string
	Status    Status
	Severity  string
	Summary   string // one line
	Source    string // where it happened: an account/region, a heartbeat source
	Component string // what reported it: cloudtrail, sns, heartbeat
	Details   map[string]string
	Time      time.Time
}

// Text renders the notice as plain text for email, SNS and Slack.
func (n *Notice) Text() string {
	s := fmt.Sprintf("[%s] %s\n", n.Title(), n.Summary)
	if n.Source != "" {
		s += "source: " + n.Source + "\n"
	}
	if !n.Time.IsZero() {
		s += "time: " + n.Time.UTC().Format(time.RFC3339) + "\n"
	}
	for _, k := range sortedKeys(n.Details) {
		s += k + ": " + n.Details[k] + "\n"
	}
	s += "key: " + n.Key + "\n"
	s += "(sent directly by a Klaxon Lambda because the Klaxon receiver did not accept it)\n"
	return s
}

// Title is the short status line: "RESOLVED" or the upper-case severity.
func (n *Notice) Title() string {
	if n.Status == Resolved {
		return "RESOLVED"
	}
	switch n.Severity {
	case SeverityCritical:
		return "CRITICAL"
	case SeverityError:
		return "ERROR"
	case SeverityWarning:
		return "WARNING"
	}
	return "INFO"
}

// Notifier sends a Notice to one destination.
type Notifier interface {
	Name() string
	Notify(ctx context.Context, n *Notice) error
}

// ErrNoNotifier is returned when a fallback is needed but none is configured.
var ErrNoNotifier = errors.New("no fallback notifier configured")

// Fanout sends to every notifier concurrently. It reports how many notifiers
// took the notice; err joins the failures. A notice that reached at least one
// human-facing destination is not lost, so callers treat delivered > 0 as
// success and only log err.
type Fanout []Notifier

// Notify sends n to every notifier.
func (f Fanout) Notify(ctx context.Context, log *slog.Logger, n *Notice) (delivered int, err error) {
	if len(f) == 0 {
		return 0, ErrNoNotifier
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, nt := range f {
		wg.Go(func() {
			if e := nt.Notify(ctx, n); e != nil {
				log.Error("fallback notify failed", "notifier", nt.Name(), "key", n.Key, "err", e)
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", nt.Name(), e))
				mu.Unlock()
				return
			}
			log.Info("fallback notified", "notifier", nt.Name(), "key", n.Key, "status", n.Status)
			mu.Lock()
			delivered++
			mu.Unlock()
		})
	}
	wg.Wait()
	return delivered, errors.Join(errs...)
}
