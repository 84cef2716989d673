package engine

import (
	"time"

	"github.com/prometheus/common/model"

	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// inhibitIndex files, for each inhibit rule, the tenant's alerts that match
// its source side by the values of its equal labels, so checking a target
// alert is one map lookup per rule instead of a scan of every alert. It is
// rebuilt lazily after alerts change.
type inhibitIndex []map[model.Fingerprint][]*Alert

func (ts *tenantState) inhibitIndex() inhibitIndex {
	if ts.inhib != nil {
		return ts.inhib
	}
	idx := make(inhibitIndex, len(ts.rules.inhibit))
	for i, r := range ts.rules.inhibit {
		idx[i] = map[model.Fingerprint][]*Alert{}
		for _, ref := range ts.alerts {
			ls := ref.alert.LabelSet()
			if r.SourceMatchers.Matches(ls) {
				k := equalKey(r.Equal, ls)
				idx[i][k] = append(idx[i][k], ref.alert)
			}
		}
	}
	ts.inhib = idx
	return idx
}

// inhibited is Alertmanager's Inhibitor.Mutes: a target alert is muted when
// a firing source alert with the same equal labels exists; if the target
// also matches the source side, sources that also match the target side do
// not count (an alert never inhibits itself or its peers).
func (ts *tenantState) inhibited(lset model.LabelSet, now time.Time) bool {
	return ts.inhibitedBy(lset, now) != ""
}

// inhibitedBy returns the fingerprint of an alert inhibiting lset, or "".
func (ts *tenantState) inhibitedBy(lset model.LabelSet, now time.Time) string {
	if len(ts.rules.inhibit) == 0 {
		return ""
	}
	idx := ts.inhibitIndex()
	for i, r := range ts.rules.inhibit {
		if !r.TargetMatchers.Matches(lset) {
			continue
		}
		twoSided := r.SourceMatchers.Matches(lset)
		for _, src := range idx[i][equalKey(r.Equal, lset)] {
			if src.ResolvedAt(now) {
				continue
			}
			if twoSided && r.TargetMatchers.Matches(src.LabelSet()) {
				continue
			}
			return src.Fingerprint
		}
	}
	return ""
}

func equalKey(equal map[model.LabelName]struct{}, ls model.LabelSet) model.Fingerprint {
	sub := make(model.LabelSet, len(equal))
	for ln := range equal {
		sub[ln] = ls[ln]
	}
	return sub.Fingerprint()
}

// View answers questions about stored groups outside the engine (the
// Alertmanager API): which alerts are inhibited, with the tenant's rules.
type View struct{ ts *tenantState }

// NewView indexes a tenant's stored groups.
func NewView(t *ruleset.Tenant, groups []*GroupState) *View {
	ts := &tenantState{rules: compileRules(t), alerts: map[string]*alertRef{}}
	if t != nil {
		ts.name = t.Name
	}
	for _, g := range groups {
		for fp, a := range g.Alerts.All() {
			if r := ts.alerts[fp]; r == nil || a.UpdatedAt.After(r.alert.UpdatedAt) {
				ts.alerts[fp] = &alertRef{alert: a}
			}
		}
	}
	return &View{ts: ts}
}

// InhibitedBy returns the fingerprint of an alert that inhibits lset at now,
// or "" when none does.
func (v *View) InhibitedBy(lset model.LabelSet, now time.Time) string {
	return v.ts.inhibitedBy(lset, now)
}
