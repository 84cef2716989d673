package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/klaxon-sh/klaxon/lambdas/alerting"
)

// Store is the outage bookkeeping deadman needs; *alerting.Store implements it.
type Store interface {
	List(ctx context.Context) ([]alerting.Beat, error)
	ClaimPage(ctx context.Context, b alerting.Beat, now time.Time) (bool, error)
	ReleasePage(ctx context.Context, source string, pagedAt time.Time) error
	ClaimResolve(ctx context.Context, b alerting.Beat) (bool, error)
	RestorePage(ctx context.Context, source string, pagedAt time.Time) error
}

// Handler checks every heartbeat on each scheduled run.
type Handler struct {
	Config *Config
	Store  Store
	Pager  alerting.Fanout
	Now    func() time.Time
	Log    *slog.Logger
}

// Handle is the Lambda entry point (EventBridge scheduled event; its content
// is not needed). For each source it pages once when the source turns stale
// and resolves once when it is fresh again. Claims in DynamoDB come before
// notifications, so overlapping runs never page twice for one outage.
func (h *Handler) Handle(ctx context.Context) error {
	now := h.Now()
	beats, err := h.Store.List(ctx)
	if err != nil {
		return fmt.Errorf("deadman: %w", err)
	}
	for src := range h.Config.Sources {
		if !slices.ContainsFunc(beats, func(b alerting.Beat) bool { return b.Source == src }) {
			beats = append(beats, alerting.Beat{Source: src})
		}
	}
	// Side by side: a page can take a destination's whole retry budget
	// (PagerDuty unreachable: three tries of HTTP_TIMEOUT), and one source
	// after another ran the last into the function's timeout.
	errs := make([]error, len(beats))
	var wg sync.WaitGroup
	for i, b := range beats {
		wg.Go(func() { errs[i] = h.check(ctx, b, now) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// undoMargin is kept back from the run's deadline for giving a claim back
// after a notice that reached nobody.
const undoMargin = 3 * time.Second

// sendContext bounds a notice to the run's deadline less undoMargin.
func sendContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, d.Add(-undoMargin))
	}
	return context.WithCancel(ctx)
}

// undoContext is for giving a claim back: not the run's context, which a
// notice that timed out has used up (the claim then stayed, the source
// counted as paged, and no later run paged it), but undoMargin of its own.
func undoContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), undoMargin)
}

// notify sends n within sendContext.
func (h *Handler) notify(ctx context.Context, n *alerting.Notice) (int, error) {
	sctx, cancel := sendContext(ctx)
	defer cancel()
	return h.Pager.Notify(sctx, h.Log, n)
}

func (h *Handler) check(ctx context.Context, b alerting.Beat, now time.Time) error {
	limit := h.Config.staleAfter(b.Source)
	stale := b.LastSeen.IsZero() || now.Sub(b.LastSeen) > limit
	switch {
	case stale && b.PagedAt.IsZero():
		won, err := h.Store.ClaimPage(ctx, b, now)
		if err != nil || !won {
			return err
		}
		n := h.notice(b, alerting.Firing, now, limit)
		if delivered, err := h.notify(ctx, n); delivered == 0 {
			// Nobody was paged: give the claim back so the next run retries.
			uctx, cancel := undoContext(ctx)
			defer cancel()
			if rerr := h.Store.ReleasePage(uctx, b.Source, now); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return fmt.Errorf("deadman: page for %q reached nobody: %w", b.Source, err)
		}
		h.Log.Warn("heartbeat stale: paged", "source", b.Source, "lastSeen", b.LastSeen, "staleAfter", limit)
	case !stale && !b.PagedAt.IsZero():
		won, err := h.Store.ClaimResolve(ctx, b)
		if err != nil || !won {
			return err
		}
		n := h.notice(b, alerting.Resolved, now, limit)
		if delivered, err := h.notify(ctx, n); delivered == 0 {
			uctx, cancel := undoContext(ctx)
			defer cancel()
			if rerr := h.Store.RestorePage(uctx, b.Source, b.PagedAt); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return fmt.Errorf("deadman: resolve for %q reached nobody: %w", b.Source, err)
		}
		h.Log.Info("heartbeat back: resolved", "source", b.Source, "lastSeen", b.LastSeen)
	}
	return nil
}

func (h *Handler) notice(b alerting.Beat, status alerting.Status, now time.Time, limit time.Duration) *alerting.Notice {
	n := &alerting.Notice{
		// One key per source: PagerDuty pairs the resolve with its trigger,
		// and a trigger repeated by a retry does not open a second incident.
		Key:       "klaxon-deadman/" + b.Source,
		Status:    status,
		Severity:  h.Config.severity(b.Source),
		Source:    b.Source,
		Component: "heartbeat",
		Time:      now,
		Details:   map[string]string{"stale_after": limit.String()},
	}
	last := "never"
	if !b.LastSeen.IsZero() {
		last = b.LastSeen.UTC().Format(time.RFC3339)
		n.Details["last_seen"] = last
	}
	if status == alerting.Firing {
		n.Summary = fmt.Sprintf("Dead man's switch: no heartbeat from %s for over %s (last seen %s); its alerting pipeline may be down", b.Source, limit, last)
	} else {
		n.Summary = fmt.Sprintf("Dead man's switch: heartbeat from %s is back (last seen %s)", b.Source, last)
	}
	return n
}
