package admin

import (
	"context"
	"errors"
	"time"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
)

// Sentinel errors stores return; the server maps them to status codes.
var (
	// ErrNotFound: no such alert, silence, SLO (codes.NotFound).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request cannot be stored as given (codes.InvalidArgument).
	ErrInvalid = errors.New("invalid")
	// ErrLimit: a tenant limit such as max_silences is reached (codes.ResourceExhausted).
	ErrLimit = errors.New("limit reached")
)

// Alerts is the engine's alert state of a tenant. The server filters.
type Alerts interface {
	ListAlerts(ctx context.Context, tenant string) ([]*adminv1.AlertState, error)
}

// Silences is the engine's silence store.
type Silences interface {
	CreateSilence(ctx context.Context, tenant string, s *adminv1.Silence) (*adminv1.Silence, error)
	ExpireSilence(ctx context.Context, tenant, id string) (*adminv1.Silence, error)
	ListSilences(ctx context.Context, tenant string) ([]*adminv1.Silence, error)
}

// SLOs computes SLO status and reports of a tenant from stored counters.
type SLOs interface {
	SLOStatus(ctx context.Context, tenant string, now time.Time) ([]*adminv1.SLOStatus, error)
	SLOReport(ctx context.Context, tenant string, window adminv1.ReportWindow, at time.Time) ([]*adminv1.SLOReport, error)
}
