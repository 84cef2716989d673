package admin

import (
	"context"
	"slices"
	"sort"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
)

// ListAlerts filters the engine's alerts of the tenant.
func (s *Server) ListAlerts(ctx context.Context, req *adminv1.ListAlertsRequest) (*adminv1.ListAlertsResponse, error) {
	if s.cfg.Alerts == nil {
		return nil, unimplemented("the engine's alert state")
	}
	tenant := TenantFrom(ctx)
	if err := notAll(tenant); err != nil {
		return nil, err
	}
	ms, err := parseMatchers(req.GetMatchers())
	if err != nil {
		return nil, err
	}
	all, err := s.cfg.Alerts.ListAlerts(ctx, tenant)
	if err != nil {
		return nil, toStatus(ctx, "list alerts", err)
	}
	resp := &adminv1.ListAlertsResponse{}
	for _, a := range all {
		switch {
		case !matches(ms, a.GetLabels()),
			req.GetReceiver() != "" && !slices.Contains(a.GetReceivers(), req.GetReceiver()),
			!req.GetSilenced() && len(a.GetSilencedBy()) > 0,
			!req.GetInhibited() && len(a.GetInhibitedBy()) > 0,
			!req.GetResolved() && a.GetStatus() == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED:
			continue
		}
		resp.Alerts = append(resp.Alerts, a)
	}
	sort.SliceStable(resp.Alerts, func(i, j int) bool {
		return resp.Alerts[i].GetStartsAt().AsTime().After(resp.Alerts[j].GetStartsAt().AsTime())
	})
	return resp, nil
}

// GetAlert returns one alert of the tenant by fingerprint.
func (s *Server) GetAlert(ctx context.Context, req *adminv1.GetAlertRequest) (*adminv1.GetAlertResponse, error) {
	if s.cfg.Alerts == nil {
		return nil, unimplemented("the engine's alert state")
	}
	tenant := TenantFrom(ctx)
	if err := notAll(tenant); err != nil {
		return nil, err
	}
	if req.GetFingerprint() == "" {
		return nil, status.Error(codes.InvalidArgument, "fingerprint is required")
	}
	all, err := s.cfg.Alerts.ListAlerts(ctx, tenant)
	if err != nil {
		return nil, toStatus(ctx, "get alert", err)
	}
	for _, a := range all {
		if a.GetFingerprint() == req.GetFingerprint() {
			return &adminv1.GetAlertResponse{Alert: a}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "no alert %s in tenant %s", req.GetFingerprint(), tenant)
}
