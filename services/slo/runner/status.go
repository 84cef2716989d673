package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	"github.com/klaxon-sh/klaxon/services/ruleset"
	"github.com/klaxon-sh/klaxon/services/slo"
)

// BurnStatus is one burn rule now.
type BurnStatus struct {
	Severity      string  `json:"severity"`
	Factor        string  `json:"factor"`
	LongWindow    string  `json:"long_window"`
	ShortWindow   string  `json:"short_window"`
	LongBurnRate  float64 `json:"long_burn_rate"`
	ShortBurnRate float64 `json:"short_burn_rate"`
	Firing        bool    `json:"firing"`
}

// Budget is one period's error budget. Budget, consumed and remaining are in
// bad events (ratio SLIs) or bad minutes (time-slice SLIs).
type Budget struct {
	Period         string    `json:"period"`
	From           time.Time `json:"from"`
	To             time.Time `json:"to"`
	Total          int64     `json:"total"`
	Budget         float64   `json:"budget"`
	BudgetExact    string    `json:"budget_exact"`
	Consumed       int64     `json:"consumed"`
	Remaining      float64   `json:"remaining"`
	RemainingRatio float64   `json:"remaining_ratio"`
	Met            bool      `json:"met"`
}

// Status of one SLO.
type Status struct {
	Name      string            `json:"name"`
	Objective string            `json:"objective"`
	Period    string            `json:"period"`
	SLI       string            `json:"sli"`
	Labels    map[string]string `json:"labels,omitempty"`
	Burn      []BurnStatus      `json:"burn_rates"`
	Budgets   []Budget          `json:"budgets"`
}

// Status computes the current status of a tenant's SLOs (all, or one by
// name) from the stored counters. It never writes.
func (r *Runner) Status(ctx context.Context, tenant, name string, now time.Time) ([]Status, error) {
	return r.status(ctx, tenant, name, now, now)
}

// status is Status with the budgets of the periods containing at, counted
// with everything up to now (burn rates are now's).
func (r *Runner) status(ctx context.Context, tenant, name string, at, now time.Time) ([]Status, error) {
	t := r.rules.Tenant(tenant)
	if t == nil {
		return nil, nil
	}
	var out []Status
	for i := range t.SLOs {
		s := &t.SLOs[i]
		if name != "" && s.Name != name {
			continue
		}
		sp, err := r.Spec(tenant, s)
		if err != nil {
			return nil, err
		}
		rec, err := r.read(ctx, tenant, s)
		if err != nil {
			return nil, err
		}
		st := Status{Name: s.Name, Objective: s.Objective, Period: model.Duration(sp.Period).String(), SLI: sp.Kind.String(), Labels: s.Labels}
		for _, a := range sp.Evaluate(&rec.counters, now) {
			st.Burn = append(st.Burn, BurnStatus{Severity: a.Severity, Factor: a.Factor.FloatString(2),
				LongWindow: model.Duration(a.Long).String(), ShortWindow: model.Duration(a.Short).String(),
				LongBurnRate: slo.Float(a.LongBurn), ShortBurnRate: slo.Float(a.ShortBurn), Firing: a.Firing})
		}
		for _, p := range []slo.Period{slo.Rolling, slo.Week, slo.Month, slo.Year} {
			rep, err := sp.ReportAt(&rec.counters, at, now, p)
			if err != nil {
				return nil, err
			}
			st.Budgets = append(st.Budgets, budgetOf(rep))
		}
		out = append(out, st)
	}
	if name != "" && len(out) == 0 {
		return nil, fmt.Errorf("%w: slo %q", errNotFound, name)
	}
	return out, nil
}

func budgetOf(rep *slo.Report) Budget {
	return Budget{Period: string(rep.Period), From: rep.From, To: rep.To, Total: rep.Total,
		Budget: slo.Float(rep.Budget), BudgetExact: rep.Budget.RatString(), Consumed: rep.Consumed,
		Remaining: slo.Float(rep.Remaining), RemainingRatio: slo.Float(rep.RemainingRatio()), Met: rep.Remaining.Sign() >= 0}
}

var errNotFound = errors.New("not found")

func (r *Runner) read(ctx context.Context, tenant string, s *ruleset.SLO) (*record, error) {
	raw, _, err := r.kv.Read(ctx, key(tenant, s.Name))
	if err != nil {
		return nil, err
	}
	rec := &record{firing: map[int]time.Time{}}
	if raw != nil {
		if err := rec.unmarshal(raw, r.cfg.Now()); err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// Authorizer decides which tenant a request may read (nil: X-Scope-OrgID,
// default "default").
type Authorizer func(r *http.Request) (string, int, error)

// Register serves GET /api/v1/slo and GET /api/v1/slo/{name}.
func (r *Runner) Register(mux *http.ServeMux, auth Authorizer) {
	h := func(w http.ResponseWriter, req *http.Request) {
		tenant := req.Header.Get("X-Scope-OrgID")
		if auth != nil {
			t, code, err := auth(req)
			if err != nil {
				writeJSON(w, code, map[string]string{"status": "error", "error": err.Error()})
				return
			}
			tenant = t
		}
		if tenant == "" {
			tenant = "default"
		}
		st, err := r.Status(req.Context(), tenant, req.PathValue("name"), r.cfg.Now())
		switch {
		case err != nil && req.PathValue("name") != "" && errors.Is(err, errNotFound):
			writeJSON(w, http.StatusNotFound, map[string]string{"status": "error", "error": err.Error()})
		case err != nil:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "error", "error": err.Error()})
		case req.PathValue("name") != "":
			writeJSON(w, http.StatusOK, st[0])
		default:
			if st == nil {
				st = []Status{}
			}
			writeJSON(w, http.StatusOK, map[string]any{"slos": st})
		}
	}
	mux.HandleFunc("GET /api/v1/slo", h)
	mux.HandleFunc("GET /api/v1/slo/{name}", h)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Admin adapts the runner to the admin API's SLO store.
type Admin struct{ R *Runner }

// SLOStatus implements admin.SLOs.
func (a Admin) SLOStatus(ctx context.Context, tenant string, now time.Time) ([]*adminv1.SLOStatus, error) {
	sts, err := a.R.Status(ctx, tenant, "", now)
	if err != nil {
		return nil, err
	}
	var out []*adminv1.SLOStatus
	for _, st := range sts {
		rolling := st.Budgets[0]
		p := &adminv1.SLOStatus{Name: st.Name, Objective: st.Objective, Period: st.Period, SliKind: st.SLI,
			BudgetRemaining: pct(rolling.RemainingRatio), BudgetConsumed: pct(1 - rolling.RemainingRatio),
			Total: rolling.Total, Good: rolling.Total - rolling.Consumed, Labels: st.Labels,
			Sli: sliOf(rolling)}
		for _, b := range st.Burn {
			p.BurnRates = append(p.BurnRates, &adminv1.BurnRateWindow{Severity: b.Severity, Factor: b.Factor, LongWindow: b.LongWindow,
				ShortWindow: b.ShortWindow, LongBurnRate: fmt.Sprintf("%.4f", b.LongBurnRate), ShortBurnRate: fmt.Sprintf("%.4f", b.ShortBurnRate), Firing: b.Firing})
		}
		out = append(out, p)
	}
	return out, nil
}

// sliOf is the achieved SLI in percent.
func sliOf(b Budget) string {
	if b.Total == 0 {
		return "100"
	}
	return fmt.Sprintf("%.4f", 100*(1-float64(b.Consumed)/float64(b.Total)))
}

// pct formats a fraction of the budget as a percentage.
func pct(f float64) string { return fmt.Sprintf("%.2f", 100*f) }

// reportWindows are the report windows in the order of Status.Budgets.
var reportWindows = []adminv1.ReportWindow{adminv1.ReportWindow_REPORT_WINDOW_PERIOD, adminv1.ReportWindow_REPORT_WINDOW_WEEKLY,
	adminv1.ReportWindow_REPORT_WINDOW_MONTHLY, adminv1.ReportWindow_REPORT_WINDOW_ANNUALLY}

// SLOReport implements admin.SLOs: one report per SLO and window, every
// window when window is unspecified (as the API and klaxonctl promise).
func (a Admin) SLOReport(ctx context.Context, tenant string, window adminv1.ReportWindow, at time.Time) ([]*adminv1.SLOReport, error) {
	windows := reportWindows
	if window != adminv1.ReportWindow_REPORT_WINDOW_UNSPECIFIED {
		i := slices.Index(reportWindows, window)
		if i < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "unknown report window %v", window)
		}
		windows = reportWindows[i : i+1]
	}
	// at picks the windows; they hold what was counted up to now, so a past
	// month is reported whole.
	sts, err := a.R.status(ctx, tenant, "", at, a.R.cfg.Now())
	if err != nil {
		return nil, err
	}
	var out []*adminv1.SLOReport
	for _, st := range sts {
		for _, w := range windows {
			b := st.Budgets[slices.Index(reportWindows, w)]
			out = append(out, &adminv1.SLOReport{Name: st.Name, Window: w, Start: timestamppb.New(b.From), End: timestamppb.New(b.To),
				Objective: st.Objective, Sli: sliOf(b), Met: b.Met, BudgetRemaining: pct(b.RemainingRatio),
				Good: b.Total - b.Consumed, Total: b.Total, BudgetConsumed: pct(1 - b.RemainingRatio)})
		}
	}
	return out, nil
}
