package admin

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
)

// GetSLOStatus reports the tenant's SLOs now.
func (s *Server) GetSLOStatus(ctx context.Context, req *adminv1.GetSLOStatusRequest) (*adminv1.GetSLOStatusResponse, error) {
	if s.cfg.SLOs == nil {
		return nil, unimplemented("SLO status")
	}
	tenant := TenantFrom(ctx)
	if err := notAll(tenant); err != nil {
		return nil, err
	}
	all, err := s.cfg.SLOs.SLOStatus(ctx, tenant, s.cfg.Now())
	if err != nil {
		return nil, toStatus(ctx, "slo status", err)
	}
	resp := &adminv1.GetSLOStatusResponse{}
	for _, st := range all {
		if req.GetName() == "" || st.GetName() == req.GetName() {
			resp.Slos = append(resp.Slos, st)
		}
	}
	if req.GetName() != "" && len(resp.Slos) == 0 {
		return nil, status.Errorf(codes.NotFound, "no SLO %q in tenant %s", req.GetName(), tenant)
	}
	return resp, nil
}

// GetSLOReport reports the tenant's SLOs over calendar windows.
func (s *Server) GetSLOReport(ctx context.Context, req *adminv1.GetSLOReportRequest) (*adminv1.GetSLOReportResponse, error) {
	if s.cfg.SLOs == nil {
		return nil, unimplemented("SLO reports")
	}
	tenant := TenantFrom(ctx)
	if err := notAll(tenant); err != nil {
		return nil, err
	}
	at := s.cfg.Now()
	if req.GetAt() != nil {
		at = req.GetAt().AsTime()
	}
	all, err := s.cfg.SLOs.SLOReport(ctx, tenant, req.GetWindow(), at)
	if err != nil {
		return nil, toStatus(ctx, "slo report", err)
	}
	resp := &adminv1.GetSLOReportResponse{}
	for _, r := range all {
		if req.GetName() == "" || r.GetName() == req.GetName() {
			resp.Reports = append(resp.Reports, r)
		}
	}
	if req.GetName() != "" && len(resp.Reports) == 0 {
		return nil, status.Errorf(codes.NotFound, "no SLO %q in tenant %s", req.GetName(), tenant)
	}
	return resp, nil
}
