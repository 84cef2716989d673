package admin

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/klaxon-sh/klaxon/services/notify"
)

// toStatus maps a store or bus error to a gRPC status: the caller's own
// deadline or cancellation keep their codes, sentinel errors become
// NotFound/InvalidArgument/ResourceExhausted, the rest Unavailable (the bus
// or a store is down; a retry may work) with what was being done.
func toStatus(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "%s: %v", what, err)
	case errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled):
		return status.Errorf(codes.Canceled, "%s: %v", what, err)
	case errors.Is(err, ErrNotFound), errors.Is(err, notify.ErrNoDeadLetter):
		return status.Errorf(codes.NotFound, "%s: %v", what, err)
	case errors.Is(err, notify.ErrSuperseded):
		return status.Errorf(codes.FailedPrecondition, "%s: %v", what, err)
	case errors.Is(err, ErrInvalid):
		return status.Errorf(codes.InvalidArgument, "%s: %v", what, err)
	case errors.Is(err, ErrLimit):
		return status.Errorf(codes.ResourceExhausted, "%s: %v", what, err)
	}
	return status.Errorf(codes.Unavailable, "%s: %v", what, err)
}

// unimplemented says which service has not been wired into this server.
func unimplemented(what string) error {
	return status.Errorf(codes.Unimplemented, "%s is not available on this server yet", what)
}

// notAll rejects the all-tenants wildcard for calls that act on one tenant.
func notAll(tenant string) error {
	if tenant == AllTenants {
		return status.Error(codes.InvalidArgument, "this call acts on one tenant: set x-scope-orgid to a tenant, not *")
	}
	return nil
}
