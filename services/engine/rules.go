package engine

import (
	"reflect"
	"sync"
	"time"

	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/common/model"

	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// maxMatchCache bounds the route match cache of one tenant; past it the cache
// starts over (label sets are usually far fewer: one per alert).
const maxMatchCache = 1 << 16

// tenantRules is a tenant's Alertmanager configuration compiled for
// dispatch: the route tree (Alertmanager's own dispatch.Route), inhibit
// rules, time intervals and which receivers want resolved notifications.
type tenantRules struct {
	src    *ruleset.Tenant
	tree   *dispatch.Route
	routes map[string]*dispatch.Route // by Route.ID()
	// ids and keys of routes, computed once: Route.ID and Route.Key render
	// every matcher on each call.
	ids, keys      map[*dispatch.Route]string
	inhibit        []*inhibit.InhibitRule
	intervals      *timeinterval.Intervener
	resolveTimeout time.Duration
	sendResolved   map[string]bool
	// silent: receivers without integrations (the "null" receiver).
	silent map[string]bool

	// Route matching walks the tree; every alert of a label set takes the
	// same path, so the result is cached by label-set fingerprint and the
	// tree is walked once per distinct label set, not once per alert.
	mu    sync.Mutex
	cache map[model.Fingerprint][]*dispatch.Route
}

func compileRules(t *ruleset.Tenant) *tenantRules {
	tr := &tenantRules{src: t, resolveTimeout: t.ResolveTimeout(), routes: map[string]*dispatch.Route{},
		sendResolved: map[string]bool{}, silent: map[string]bool{}, cache: map[model.Fingerprint][]*dispatch.Route{}}
	if t == nil || t.Config == nil || t.Config.Route == nil {
		return tr
	}
	c := t.Config
	tr.tree = dispatch.NewRoute(c.Route, nil)
	tr.ids, tr.keys = map[*dispatch.Route]string{}, map[*dispatch.Route]string{}
	tr.tree.Walk(func(r *dispatch.Route) {
		tr.routes[r.ID()] = r
		tr.ids[r], tr.keys[r] = r.ID(), r.Key()
	})
	for _, ir := range c.InhibitRules {
		tr.inhibit = append(tr.inhibit, inhibit.NewInhibitRule(ir))
	}
	ti := map[string][]timeinterval.TimeInterval{}
	for _, x := range c.MuteTimeIntervals {
		ti[x.Name] = x.TimeIntervals
	}
	for _, x := range c.TimeIntervals {
		ti[x.Name] = x.TimeIntervals
	}
	tr.intervals = timeinterval.NewIntervener(ti)
	for _, rc := range c.Receivers {
		n, sendResolved := receiverInfo(rc)
		tr.sendResolved[rc.Name] = sendResolved
		tr.silent[rc.Name] = n == 0
	}
	return tr
}

// match returns the routes lset takes, Alertmanager's Route.Match, cached by
// the label set's fingerprint fp; lset is called only on a miss.
func (tr *tenantRules) match(fp model.Fingerprint, lset func() model.LabelSet) []*dispatch.Route {
	if tr.tree == nil {
		return nil
	}
	tr.mu.Lock()
	rs, ok := tr.cache[fp]
	tr.mu.Unlock()
	if ok {
		return rs
	}
	rs = tr.tree.Match(lset())
	tr.mu.Lock()
	if len(tr.cache) >= maxMatchCache {
		tr.cache = map[model.Fingerprint][]*dispatch.Route{}
	}
	tr.cache[fp] = rs
	tr.mu.Unlock()
	return rs
}

// muted says whether the route's mute_time_intervals or
// active_time_intervals hold back its notifications at now.
func (tr *tenantRules) muted(r *dispatch.Route, now time.Time) bool {
	if tr.intervals == nil {
		return false
	}
	if len(r.RouteOpts.MuteTimeIntervals) > 0 {
		if m, _, err := tr.intervals.Mutes(r.RouteOpts.MuteTimeIntervals, now); err == nil && m {
			return true
		}
	}
	if len(r.RouteOpts.ActiveTimeIntervals) > 0 {
		if in, _, err := tr.intervals.Mutes(r.RouteOpts.ActiveTimeIntervals, now); err == nil && !in {
			return true
		}
	}
	return false
}

// receiverInfo walks a receiver's *_configs once: how many integrations
// it has, and whether any of them sends resolved notifications.
// Alertmanager decides send_resolved per integration; the engine decides
// per receiver (the notifier drops all-resolved notifications for
// integrations with send_resolved: false). A receiver without integrations
// counts as sending them, so rule unit tests can route to it.
func receiverInfo(rc amconfig.Receiver) (integrations int, sendResolved bool) {
	v := reflect.ValueOf(rc)
	hasAny := false
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() != reflect.Slice {
			continue
		}
		integrations += f.Len()
		for j := 0; j < f.Len(); j++ {
			if sr, ok := f.Index(j).Interface().(interface{ SendResolved() bool }); ok {
				hasAny = true
				sendResolved = sendResolved || sr.SendResolved()
			}
		}
	}
	return integrations, sendResolved || !hasAny
}

// groupLabelsOf is the group's labels for an alert with labels ls on route
// r. group_by: ['...'] takes them all: ls itself, shared rather than copied
// (Labels are immutable), which saves a copy per active alert.
func groupLabelsOf(r *dispatch.Route, ls Labels) Labels {
	if r.RouteOpts.GroupByAll {
		return ls
	}
	return ls.Filter(func(name string) bool {
		_, ok := r.RouteOpts.GroupBy[model.LabelName(name)]
		return ok
	})
}
