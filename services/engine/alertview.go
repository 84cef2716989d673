package engine

import (
	"slices"
	"time"

	"github.com/prometheus/common/model"

	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// AlertView is one alert of a tenant as the APIs outside the engine show it
// (the Alertmanager API v2 and the admin API): the newest of the copies the
// tenant's groups hold, the receivers of those groups, and what mutes it.
type AlertView struct {
	Alert *Alert
	// Receivers whose groups hold the alert, sorted, each once.
	Receivers []string
	// SilencedBy: ids of the active silences that match it, sorted.
	SilencedBy []string
	// InhibitedBy: fingerprint of an alert that inhibits it, or "".
	InhibitedBy string
}

// Suppressed says whether a silence or an inhibition mutes the alert
// (Alertmanager's "suppressed" state).
func (v *AlertView) Suppressed() bool { return len(v.SilencedBy) > 0 || v.InhibitedBy != "" }

// Views builds the views of a tenant's stored groups at now, keyed by
// fingerprint. t supplies the tenant's inhibit rules (nil: none);
// silencedBy returns the ids of the silences that mute a label set (the
// tenant's silence.Store.Mutes; nil: none). Copies resolved at now are left
// out unless withResolved is set, as Alertmanager's API lists only
// unresolved alerts.
func Views(t *ruleset.Tenant, groups []*GroupState, silencedBy func(model.LabelSet) []string, now time.Time, withResolved bool) map[string]*AlertView {
	inhibit := NewView(t, groups)
	out := map[string]*AlertView{}
	for _, g := range groups {
		for fp, a := range g.Alerts.All() {
			if !withResolved && a.ResolvedAt(now) {
				continue
			}
			v := out[fp]
			if v == nil {
				// Same fingerprint, same labels: what mutes one copy mutes all.
				ls := a.LabelSet()
				v = &AlertView{Alert: a, InhibitedBy: inhibit.InhibitedBy(ls, now)}
				if silencedBy != nil {
					v.SilencedBy = slices.Sorted(slices.Values(silencedBy(ls)))
				}
				out[fp] = v
			} else if a.UpdatedAt.After(v.Alert.UpdatedAt) {
				v.Alert = a
			}
			if !slices.Contains(v.Receivers, g.Receiver) {
				v.Receivers = append(v.Receivers, g.Receiver)
			}
		}
	}
	for _, v := range out {
		slices.Sort(v.Receivers)
	}
	return out
}
