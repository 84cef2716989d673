package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
	var errs []error
	for _, b := range beats {
		if err := h.check(ctx, b, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
		if delivered, err := h.Pager.Notify(ctx, h.Log, n); delivered == 0 {
			// Nobody was paged: give the claim back so the next run retries.
			if rerr := h.Store.ReleasePage(ctx, b.Source, now); rerr != nil {
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
		if delivered, err := h.Pager.Notify(ctx, h.Log, n); delivered == 0 {
			if rerr := h.Store.RestorePage(ctx, b.Source, b.PagedAt); rerr != nil {
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
