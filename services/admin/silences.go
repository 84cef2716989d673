package admin

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
)

// CreateSilence validates the silence and stores it in the engine's store.
func (s *Server) CreateSilence(ctx context.Context, req *adminv1.CreateSilenceRequest) (*adminv1.CreateSilenceResponse, error) {
	if s.cfg.Silences == nil {
		return nil, unimplemented("the engine's silence store")
	}
	tenant := TenantFrom(ctx)
	if err := notAll(tenant); err != nil {
		return nil, err
	}
	sil := req.GetSilence()
	if err := validateSilence(sil); err != nil {
		return nil, err
	}
	if sil.GetStartsAt() == nil {
		// Like amtool: a silence without a start starts now.
		sil.StartsAt = nowPB(s.cfg.Now())
	}
	if !sil.GetEndsAt().AsTime().After(sil.GetStartsAt().AsTime()) {
		return nil, status.Error(codes.InvalidArgument, "ends_at must be after starts_at")
	}
	if !sil.GetEndsAt().AsTime().After(s.cfg.Now()) {
		return nil, status.Error(codes.InvalidArgument, "ends_at is in the past: the silence would never be active")
	}
	got, err := s.cfg.Silences.CreateSilence(ctx, tenant, sil)
	if err != nil {
		return nil, toStatus(ctx, "create silence", err)
	}
	s.log.Info("silence created", "tenant", tenant, "id", got.GetId(), "by", got.GetCreatedBy())
	return &adminv1.CreateSilenceResponse{Silence: got}, nil
}

// ExpireSilence ends a silence now.
func (s *Server) ExpireSilence(ctx context.Context, req *adminv1.ExpireSilenceRequest) (*adminv1.ExpireSilenceResponse, error) {
	if s.cfg.Silences == nil {
		return nil, unimplemented("the engine's silence store")
	}
	tenant := TenantFrom(ctx)
	if err := notAll(tenant); err != nil {
		return nil, err
	}
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "id is required")
	}
	got, err := s.cfg.Silences.ExpireSilence(ctx, tenant, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, "expire silence "+req.GetId(), err)
	}
	s.log.Info("silence expired", "tenant", tenant, "id", req.GetId())
	return &adminv1.ExpireSilenceResponse{Silence: got}, nil
}

// ListSilences lists the tenant's silences, filtered.
func (s *Server) ListSilences(ctx context.Context, req *adminv1.ListSilencesRequest) (*adminv1.ListSilencesResponse, error) {
	if s.cfg.Silences == nil {
		return nil, unimplemented("the engine's silence store")
	}
	tenant := TenantFrom(ctx)
	if err := notAll(tenant); err != nil {
		return nil, err
	}
	want, err := parseMatchers(req.GetMatchers())
	if err != nil {
		return nil, err
	}
	all, err := s.cfg.Silences.ListSilences(ctx, tenant)
	if err != nil {
		return nil, toStatus(ctx, "list silences", err)
	}
	resp := &adminv1.ListSilencesResponse{}
next:
	for _, sil := range all {
		if !req.GetExpired() && sil.GetState() == adminv1.SilenceState_SILENCE_STATE_EXPIRED {
			continue
		}
		for _, w := range want {
			found := false
			for _, m := range sil.GetMatchers() {
				found = found || (m.GetName() == w.Name && m.GetValue() == w.Value && m.GetType() == matcherType(w.Type))
			}
			if !found {
				continue next
			}
		}
		resp.Silences = append(resp.Silences, sil)
	}
	return resp, nil
}

// validateSilence checks what any store would reject, so every store
// answers the same InvalidArgument for the same mistake.
func validateSilence(sil *adminv1.Silence) error {
	if sil == nil {
		return status.Error(codes.InvalidArgument, "silence is required")
	}
	if len(sil.GetMatchers()) == 0 {
		return status.Error(codes.InvalidArgument, "a silence needs at least one matcher")
	}
	if sil.GetEndsAt() == nil {
		return status.Error(codes.InvalidArgument, "ends_at is required")
	}
	if sil.GetCreatedBy() == "" {
		return status.Error(codes.InvalidArgument, "created_by is required")
	}
	allEmpty := true
	for _, m := range sil.GetMatchers() {
		lm, err := toLabelsMatcher(m)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "matcher %s: %v", m.GetName(), err)
		}
		// What the matcher matches, not its value: team!="" does not
		// match the empty string (a silence of everything with a team),
		// foo=~".*" does.
		if !lm.Matches("") {
			allEmpty = false
		}
	}
	if allEmpty {
		// Alertmanager's rule: such a silence would mute everything.
		return status.Error(codes.InvalidArgument, "at least one matcher must not match the empty string")
	}
	return nil
}
