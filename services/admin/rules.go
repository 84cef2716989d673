package admin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// LintRules validates the rules directory as it is on disk now. It loads
// into a fresh Set that is thrown away, so the running rules are untouched.
func (s *Server) LintRules(ctx context.Context, _ *adminv1.LintRulesRequest) (*adminv1.LintRulesResponse, error) {
	tenant := TenantFrom(ctx)
	set, err := ruleset.Load(s.cfg.Rules.Dir())
	resp := &adminv1.LintRulesResponse{Valid: err == nil}
	if err != nil {
		resp.Errors = s.ruleErrors(tenant, err)
		return resp, nil
	}
	for name, t := range set.Tenants {
		if s.sees(tenant, name) {
			resp.Tenants++
			resp.Files += int32(len(t.Files))
		}
	}
	return resp, nil
}

// ReloadRules reloads the rules; a failed reload keeps the old rules and
// answers FailedPrecondition with every error.
func (s *Server) ReloadRules(ctx context.Context, _ *adminv1.ReloadRulesRequest) (*adminv1.ReloadRulesResponse, error) {
	if err := s.cfg.Reload("grpc"); err != nil {
		var msgs []string
		for _, e := range s.ruleErrors(TenantFrom(ctx), err) {
			msgs = append(msgs, ruleErrorString(e))
		}
		return nil, status.Errorf(codes.FailedPrecondition, "rules are invalid, keeping the last good ones:\n%s", strings.Join(msgs, "\n"))
	}
	st, err := s.GetRulesStatus(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &adminv1.ReloadRulesResponse{Status: st}, nil
}

// GetRulesStatus reports the rules in force and the last reload.
func (s *Server) GetRulesStatus(ctx context.Context, _ *adminv1.GetRulesStatusRequest) (*adminv1.GetRulesStatusResponse, error) {
	tenant := TenantFrom(ctx)
	h := s.cfg.Rules
	st := h.Status()
	resp := &adminv1.GetRulesStatusResponse{
		Dir:               h.Dir(),
		Version:           h.Version(),
		LastReloadSuccess: st.Success,
	}
	if !st.At.IsZero() {
		resp.LastReloadAt = timestamppb.New(st.At)
	}
	if st.Err != nil {
		var msgs []string
		for _, e := range s.ruleErrors(tenant, st.Err) {
			msgs = append(msgs, ruleErrorString(e))
		}
		resp.LastReloadError = strings.Join(msgs, "\n")
	}
	set := h.Get()
	if set == nil {
		return resp, nil
	}
	if !set.LoadedAt.IsZero() {
		resp.LoadedAt = timestamppb.New(set.LoadedAt)
	}
	for name, t := range set.Tenants {
		if !s.sees(tenant, name) {
			continue
		}
		tr := &adminv1.TenantRules{
			Tenant:     name,
			Files:      append([]string(nil), t.Files...),
			Policies:   int32(len(t.Policies)),
			Heartbeats: int32(len(t.Heartbeats)),
			Slos:       int32(len(t.SLOs)),
		}
		if t.Config != nil {
			for _, r := range t.Config.Receivers {
				tr.Receivers = append(tr.Receivers, r.Name)
			}
		}
		resp.Tenants = append(resp.Tenants, tr)
	}
	sort.Slice(resp.Tenants, func(i, j int) bool { return resp.Tenants[i].Tenant < resp.Tenants[j].Tenant })
	return resp, nil
}

// sees reports whether a caller acting for tenant may see another tenant's
// rules: its own, or all of them with the wildcard (admins, or auth off).
func (s *Server) sees(tenant, other string) bool {
	return tenant == AllTenants || tenant == other
}

// ruleErrors flattens a joined load error into positioned errors. With auth
// on, a tenant sees only the errors of its own directory, and how many
// others there are (a reload is all or nothing, so they matter to it too).
func (s *Server) ruleErrors(tenant string, err error) []*adminv1.RuleError {
	var all []*adminv1.RuleError
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var re *ruleset.Error
		if errors.As(err, &re) {
			all = append(all, &adminv1.RuleError{File: re.File, Line: int32(re.Line), Column: int32(re.Col), Message: re.Msg})
			return
		}
		all = append(all, &adminv1.RuleError{Message: err.Error()})
	}
	walk(err)
	if s.cfg.Tenants == nil || tenant == AllTenants {
		return all
	}
	own := filepath.Join(s.cfg.Rules.Dir(), tenant) + string(filepath.Separator)
	var mine []*adminv1.RuleError
	hidden := 0
	for _, e := range all {
		if strings.HasPrefix(e.File, own) {
			mine = append(mine, e)
		} else {
			hidden++
		}
	}
	if hidden > 0 {
		mine = append(mine, &adminv1.RuleError{Message: pluralErrors(hidden) + " in other tenants' rules (ask an admin)"})
	}
	return mine
}

func pluralErrors(n int) string {
	if n == 1 {
		return "1 error"
	}
	return fmt.Sprintf("%d errors", n)
}

// ruleErrorString formats an error as file:line:col: message.
func ruleErrorString(e *adminv1.RuleError) string {
	switch {
	case e.File == "":
		return e.Message
	case e.Line == 0:
		return e.File + ": " + e.Message
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Message)
}
