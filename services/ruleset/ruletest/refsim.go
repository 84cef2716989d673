package ruletest

import (
	"reflect"
	"sort"
	"time"

	amconfig "github.com/prometheus/alertmanager/config"
	amcommon "github.com/prometheus/alertmanager/config/common"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// RefSim is a reference simulator of Alertmanager's dispatch semantics
// (route tree, group_by, group_wait/group_interval/repeat_interval, the
// notification log's dedup rule, send_resolved, resolve_timeout, inhibition
// and mute/active time intervals) on a simulated clock. It stands in for
// the engine's own pure dispatcher until that exists; it does not evaluate
// Klaxon's policies, heartbeats or SLOs, so events are ignored.
type RefSim struct {
	cfg       *amconfig.Config
	tree      *dispatch.Route
	intervals *timeinterval.Intervener
	resolve   time.Duration
	tenant    string

	alerts map[string]*klaxonv1.Alert // every alert of the tenant, for inhibition
	groups map[string]*refGroup
	nflog  map[string]*nflogEntry // by receiver + group key; outlives groups
}

type refGroup struct {
	key    string
	route  *dispatch.Route
	labels map[string]string
	alerts map[string]*klaxonv1.Alert
	next   time.Time
}

type nflogEntry struct {
	firing, resolved map[string]bool
	at               time.Time
}

// NewRefSim is a NewSimulator for RefSim.
func NewRefSim(t *ruleset.Tenant, _ time.Time) (Simulator, error) {
	s := &RefSim{tenant: t.Name, cfg: t.Config, alerts: map[string]*klaxonv1.Alert{},
		groups: map[string]*refGroup{}, nflog: map[string]*nflogEntry{}, resolve: 5 * time.Minute}
	if t.Config == nil {
		return s, nil
	}
	s.tree = dispatch.NewRoute(t.Config.Route, nil)
	if g := t.Config.Global; g != nil && g.ResolveTimeout != 0 {
		s.resolve = time.Duration(g.ResolveTimeout)
	}
	ti := map[string][]timeinterval.TimeInterval{}
	for _, x := range t.Config.MuteTimeIntervals {
		ti[x.Name] = x.TimeIntervals
	}
	for _, x := range t.Config.TimeIntervals {
		ti[x.Name] = x.TimeIntervals
	}
	s.intervals = timeinterval.NewIntervener(ti)
	return s, nil
}

// Ingest implements Simulator.
func (s *RefSim) Ingest(at time.Time, env *klaxonv1.Envelope) {
	a := env.GetAlert()
	if a == nil || s.tree == nil {
		return
	}
	// Like Alertmanager, an alert without an end ends resolve_timeout after
	// it was last received, unless it is sent again.
	if a.GetStatus() != klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED && a.GetEndsAt() == nil {
		a.EndsAt = timestamppb.New(at.Add(s.resolve))
	}
	s.alerts[a.GetFingerprint()] = a
	ls := toLS(a.GetLabels())
	for _, r := range s.tree.Match(ls) {
		gl := map[string]string{}
		for k, v := range a.GetLabels() {
			if r.RouteOpts.GroupByAll {
				gl[k] = v
			} else if _, ok := r.RouteOpts.GroupBy[model.LabelName(k)]; ok {
				gl[k] = v
			}
		}
		gk := r.Key() + ":" + toLS(gl).String()
		g := s.groups[gk]
		if g == nil {
			g = &refGroup{key: gk, route: r, labels: gl, alerts: map[string]*klaxonv1.Alert{}}
			g.next = at.Add(r.RouteOpts.GroupWait)
			if st := a.GetStartsAt().AsTime().Add(r.RouteOpts.GroupWait); st.Before(at) {
				g.next = at
			}
			s.groups[gk] = g
		}
		g.alerts[a.GetFingerprint()] = a
	}
}

// Advance implements Simulator: it flushes every group due up to to, in
// time order.
func (s *RefSim) Advance(to time.Time) []*klaxonv1.Notification {
	var out []*klaxonv1.Notification
	for range 1_000_000 { // bounded: each flush moves a group's timer forward
		var due *refGroup
		for _, g := range s.groups {
			if !g.next.After(to) && (due == nil || g.next.Before(due.next) || (g.next.Equal(due.next) && g.key < due.key)) {
				due = g
			}
		}
		if due == nil {
			break
		}
		if n := s.flush(due, due.next); n != nil {
			out = append(out, n)
		}
	}
	return out
}

func (s *RefSim) flush(g *refGroup, now time.Time) *klaxonv1.Notification {
	g.next = now.Add(g.route.RouteOpts.GroupInterval)
	firing, resolved := map[string]bool{}, map[string]bool{}
	var alerts []*klaxonv1.Alert
	for fp, a := range g.alerts {
		if s.inhibited(a, now) {
			continue
		}
		alerts = append(alerts, a)
		if isResolved(a, now) {
			resolved[fp] = true
		} else {
			firing[fp] = true
		}
	}
	defer func() {
		for fp := range resolved {
			if isResolved(g.alerts[fp], now) {
				delete(g.alerts, fp)
			}
		}
		if len(g.alerts) == 0 {
			delete(s.groups, g.key)
		}
	}()
	if len(alerts) == 0 || s.muted(g.route, now) {
		return nil
	}
	recv := g.route.RouteOpts.Receiver
	logKey := recv + "/" + g.key
	sendResolved := s.sendResolved(recv)
	entry := s.nflog[logKey]
	if !needsUpdate(entry, firing, resolved, sendResolved, g.route.RouteOpts.RepeatInterval, now) {
		return nil
	}
	s.nflog[logKey] = &nflogEntry{firing: firing, resolved: resolved, at: now}
	if len(firing) == 0 && !sendResolved {
		return nil
	}
	sort.Slice(alerts, func(i, j int) bool { return alerts[i].GetFingerprint() < alerts[j].GetFingerprint() })
	n := &klaxonv1.Notification{Tenant: s.tenant, Receiver: recv, GroupKey: g.key, GroupLabels: g.labels,
		CreatedAt: timestamppb.New(now), Status: klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED}
	for _, a := range alerts {
		if firing[a.GetFingerprint()] {
			n.Status = klaxonv1.AlertStatus_ALERT_STATUS_FIRING
		} else if !sendResolved {
			continue
		}
		n.Alerts = append(n.Alerts, a)
	}
	return n
}

// needsUpdate is Alertmanager's DedupStage rule.
func needsUpdate(e *nflogEntry, firing, resolved map[string]bool, sendResolved bool, repeat time.Duration, now time.Time) bool {
	if e == nil {
		return len(firing) > 0
	}
	if !subset(firing, e.firing) {
		return true
	}
	if len(firing) == 0 {
		return len(e.firing) > 0
	}
	if sendResolved && !subset(resolved, e.resolved) {
		return true
	}
	return e.at.Before(now.Add(-repeat))
}

func subset(a, b map[string]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func isResolved(a *klaxonv1.Alert, now time.Time) bool {
	return a.GetStatus() == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED ||
		(a.GetEndsAt() != nil && !a.GetEndsAt().AsTime().After(now))
}

// sendResolved is true when any integration of the receiver sends resolved
// notifications (a receiver without integrations counts as sending them, so
// tests can route to it).
func (s *RefSim) sendResolved(name string) bool {
	for i := range s.cfg.Receivers {
		r := &s.cfg.Receivers[i]
		if r.Name != name {
			continue
		}
		v := reflect.ValueOf(r).Elem()
		hasAny := false
		for j := 0; j < v.NumField(); j++ {
			f := v.Field(j)
			if f.Kind() != reflect.Slice {
				continue
			}
			for k := 0; k < f.Len(); k++ {
				if sr, ok := f.Index(k).Interface().(interface{ SendResolved() bool }); ok {
					hasAny = true
					if sr.SendResolved() {
						return true
					}
				}
			}
		}
		return !hasAny
	}
	return true
}

func (s *RefSim) muted(r *dispatch.Route, now time.Time) bool {
	if s.intervals == nil {
		return false
	}
	if len(r.RouteOpts.MuteTimeIntervals) > 0 {
		if m, _, err := s.intervals.Mutes(r.RouteOpts.MuteTimeIntervals, now); err == nil && m {
			return true
		}
	}
	if len(r.RouteOpts.ActiveTimeIntervals) > 0 {
		if m, _, err := s.intervals.Mutes(r.RouteOpts.ActiveTimeIntervals, now); err == nil && !m {
			return true
		}
	}
	return false
}

// inhibited applies the tenant's inhibit_rules: a firing source alert with
// the same values of the equal labels mutes a target alert.
func (s *RefSim) inhibited(a *klaxonv1.Alert, now time.Time) bool {
	if s.cfg == nil {
		return false
	}
	tl := a.GetLabels()
	for _, r := range s.cfg.InhibitRules {
		if !matchAll(r.TargetMatchers, r.TargetMatch, r.TargetMatchRE, tl) {
			continue
		}
		for fp, src := range s.alerts {
			if fp == a.GetFingerprint() || isResolved(src, now) {
				continue
			}
			sl := src.GetLabels()
			if !matchAll(r.SourceMatchers, r.SourceMatch, r.SourceMatchRE, sl) {
				continue
			}
			equal := true
			for _, l := range r.Equal {
				if sl[l] != tl[l] {
					equal = false
					break
				}
			}
			if equal {
				return true
			}
		}
	}
	return false
}

func matchAll(ms amcommon.Matchers, eq map[string]string, re amcommon.MatchRegexps, l map[string]string) bool {
	if !labels.Matchers(ms).Matches(toLS(l)) {
		return false
	}
	for k, v := range eq {
		if l[k] != v {
			return false
		}
	}
	for k, v := range re {
		if !v.MatchString(l[k]) {
			return false
		}
	}
	return true
}
