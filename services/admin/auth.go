package admin

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// Metadata keys, as Loki and Mimir use them over HTTP.
const (
	TenantHeader = "x-scope-orgid"
	AuthHeader   = "authorization"
	// AllTenants, as a tenant, lets list and tail calls span every tenant.
	// Only admin tokens may use it when auth is on.
	AllTenants = "*"
	// DefaultTenant is the tenant of a call without x-scope-orgid when auth is off.
	DefaultTenant = "default"
)

type tenantKey struct{}

// TenantFrom returns the tenant the call was authorised for.
func TenantFrom(ctx context.Context) string {
	t, _ := ctx.Value(tenantKey{}).(string)
	return t
}

// ownService reports whether method belongs to the admin API (health and
// reflection stay open for probes and grpcurl).
func ownService(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/klaxon.admin.")
}

func (s *Server) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if !ownService(info.FullMethod) {
		return h(ctx, req)
	}
	ctx, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) authStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if !ownService(info.FullMethod) {
		return h(srv, ss)
	}
	ctx, err := s.authenticate(ss.Context())
	if err != nil {
		return err
	}
	return h(srv, &tenantStream{ServerStream: ss, ctx: ctx})
}

type tenantStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (t *tenantStream) Context() context.Context { return t.ctx }

// authenticate decides the call's tenant: from x-scope-orgid, checked
// against the bearer token when auth is on.
func (s *Server) authenticate(ctx context.Context) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	want := strings.TrimSpace(first(md, TenantHeader))
	if want != "" && want != AllTenants && !tenantRE.MatchString(want) {
		return nil, status.Errorf(codes.InvalidArgument, "%s %q: a tenant must match %s", TenantHeader, want, tenantRE)
	}
	if s.cfg.Tenants == nil {
		if want == "" {
			want = DefaultTenant
		}
		return context.WithValue(ctx, tenantKey{}, want), nil
	}
	token, ok := strings.CutPrefix(first(md, AuthHeader), "Bearer ")
	if !ok {
		token = ""
	}
	tenant, err := s.cfg.Tenants.Authorize(strings.TrimSpace(token), want)
	if err != nil {
		var ae *ruleset.AuthError
		if errors.As(err, &ae) {
			switch ae.Status {
			case http.StatusUnauthorized:
				return nil, status.Error(codes.Unauthenticated, ae.Msg)
			case http.StatusForbidden:
				return nil, status.Error(codes.PermissionDenied, ae.Msg)
			case http.StatusBadRequest:
				// The gRPC caller is most often klaxonctl: say its flag.
				return nil, status.Error(codes.InvalidArgument, ae.Msg+" (klaxonctl --tenant T, or --tenant '*' where a call spans every tenant)")
			}
		}
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return context.WithValue(ctx, tenantKey{}, tenant), nil
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// tenantRE is the receiver's rule for tenant names (they become subject
// tokens), so a name it rejects can own nothing.
var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)
