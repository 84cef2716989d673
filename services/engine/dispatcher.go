package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/engine/silence"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// DispatcherConfig configures a Dispatcher.
type DispatcherConfig struct {
	// Rules returns a tenant's rules (nil: the tenant has none). A changed
	// pointer means the rules were reloaded.
	Rules func(tenant string) *ruleset.Tenant
	// Store persists groups; nil keeps them in memory only.
	Store Store
	// Silences mute alerts before notification; nil means none.
	Silences *silence.Store
	// MaxActiveAlerts is a tenant's limit of alerts held at once
	// (tenants.yml max_active_alerts; nil or 0: unlimited).
	MaxActiveAlerts func(tenant string) int
	// MaxGroupBytes bounds what a group's alerts may take in its stored
	// value (alertBytes of each; 0: unbounded): a new alert that would take
	// a group past it is not taken into that group (ErrGroupFull). The
	// engine sets it from the largest message JetStream takes: a group's
	// value is one KV message, and one that grew past it could not be
	// stored, so every batch that touched the group would fail, and be
	// redelivered, for ever, and routing would stop for every tenant.
	MaxGroupBytes int
	// SkipSilentReceivers: a receiver without integrations (the usual
	// "null" receiver) gets no notifications and no notification log, as
	// in Alertmanager, where its pipeline fans out to nothing. The server
	// sets it, saving the writes; rule unit tests leave it off, so they
	// can show what such a route would send.
	SkipSilentReceivers bool
	// StaleGuard is how long the engine remembers the stream sequence of an
	// alert it resolved and dropped, to refuse an older firing message of it
	// that is redelivered later (default 15m: well past INGEST redelivery).
	StaleGuard time.Duration
	Log        *slog.Logger
}

// ErrTooManyAlerts: the tenant holds max_active_alerts alerts and this one is
// new; it is not taken in (updates of held alerts always are).
var ErrTooManyAlerts = errors.New("tenant's max_active_alerts reached")

// ErrGroupFull: a group's alerts reached DispatcherConfig.MaxGroupBytes and
// this alert is new to it; it is not taken into that group (updates of its
// alerts always are), though it is into the other groups it belongs to.
var ErrGroupFull = errors.New("group holds as many alerts as it can store")

// ErrStale: the alert came in a message older than one already applied to
// it (a redelivery after a crash); it is not taken in.
var ErrStale = errors.New("alert older than its state")

// Dispatcher is the pure core of the engine: Alertmanager's dispatcher
// (route tree, aggregation groups and their timers) and its notification
// pipeline up to the integrations (inhibition, time intervals, silences,
// dedup against the notification log), driven by explicit calls instead of
// goroutines and timers: Receive when an alert arrives, Tick(now) when time
// passes. Time is whatever the caller says, so the same code runs on the
// wall clock in the server and on a simulated clock in `klaxonctl rules test`.
//
// Every state change is handed to the Store before the call returns; a
// caller may acknowledge its input once Commit has returned nil after it
// (a Store that is not a Committer writes at once, and Commit does nothing).
type Dispatcher struct {
	cfg DispatcherConfig

	mu      sync.Mutex
	tenants map[string]*tenantState
	due     dueHeap   // flush times (schedule.go)
	swept   time.Time // last sweep of expired notification logs
}

type tenantState struct {
	name   string
	rules  *tenantRules
	groups map[groupRef]*group  // by route id and group labels
	alerts map[string]*alertRef // every alert held by some group, by fingerprint
	inhib  inhibitIndex         // nil when stale
	// orphans: a reload left groups without a route; regroup their alerts.
	orphans bool
	// pending: the groups whose Pending notification is not yet acked, by
	// the notification's idempotency key.
	pending map[string]*group
	// gone: alerts resolved and dropped in the last StaleGuard, by
	// fingerprint. In memory only: it guards against redeliveries to this
	// replica, and a replica taking over has the stored alerts' Seq.
	gone map[string]goneAlert
}

// groupRef identifies a group within its tenant, as its id does, but from
// strings the group holds anyway: looking a group up renders nothing.
type groupRef struct {
	route  string
	labels Labels
}

func (g *GroupState) ref() groupRef { return groupRef{g.RouteID, g.Labels} }

// logKey renders a group's key only for a log line that is written.
type logKey struct{ g *GroupState }

func (k logKey) LogValue() slog.Value { return slog.StringValue(k.g.Key()) }

type goneAlert struct {
	seq uint64    // of the message that last updated it
	at  time.Time // when it was dropped
}

type alertRef struct {
	alert *Alert
	// groups holding the alert: usually one, so a slice, not a map (one
	// map per active alert is most of an alert storm's memory).
	groups []*group
}

type group struct {
	*GroupState
	route *dispatch.Route
	// sched is the flush time of the group's live heap entry in Unix
	// nanoseconds (0: none): an int64, not a time.Time, as every held
	// group has one.
	sched int64
	// bytes is the alertBytes of the group's alerts, once sized (while
	// MaxGroupBytes is set): kept as alerts are set and deleted, so a
	// storm's inserts do not sum a large group again and again.
	bytes int
	sized bool
}

// alertBytes is alertBytes of g's alerts.
func (g *group) alertBytes() int {
	if !g.sized {
		g.bytes = 0
		for _, a := range g.Alerts.All() {
			g.bytes += alertBytes(a)
		}
		g.sized = true
	}
	return g.bytes
}

// setAlert sets a in g.Alerts, keeping g.bytes.
func (g *group) setAlert(a *Alert) {
	if g.sized {
		if old := g.Alerts.Get(a.Fingerprint); old != nil {
			g.bytes -= alertBytes(old)
		}
		g.bytes += alertBytes(a)
	}
	g.Alerts.Set(a)
}

// deleteAlert deletes fp from g.Alerts, keeping g.bytes.
func (g *group) deleteAlert(fp string) {
	if g.sized {
		if old := g.Alerts.Get(fp); old != nil {
			g.bytes -= alertBytes(old)
		}
	}
	g.Alerts.Delete(fp)
}

// NewDispatcher builds an empty dispatcher; call Load to resume stored state.
func NewDispatcher(cfg DispatcherConfig) *Dispatcher {
	if cfg.Store == nil {
		cfg.Store = NewMemStore()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Rules == nil {
		cfg.Rules = func(string) *ruleset.Tenant { return nil }
	}
	if cfg.StaleGuard <= 0 {
		cfg.StaleGuard = 15 * time.Minute
	}
	return &Dispatcher{cfg: cfg, tenants: map[string]*tenantState{}}
}

// Load replaces the in-memory state with the stored one (at start, or when
// this replica takes over from another).
func (d *Dispatcher) Load(ctx context.Context) error {
	gs, err := d.cfg.Store.Load(ctx)
	if err != nil {
		return fmt.Errorf("load groups: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tenants = map[string]*tenantState{}
	d.due = nil
	for _, g := range gs {
		ts := d.tenant(g.Tenant)
		// nil if the rules changed while down and the group is no longer
		// theirs: the next Receive or Tick regroups its alerts.
		r := ts.route(g)
		if r == nil {
			ts.orphans = true
		}
		d.addGroup(ts, &group{GroupState: g, route: r})
	}
	return nil
}

// tenant returns the tenant's state, recompiling its rules after a reload.
// Callers hold d.mu.
func (d *Dispatcher) tenant(name string) *tenantState {
	src := d.cfg.Rules(name)
	ts := d.tenants[name]
	if ts == nil {
		ts = &tenantState{name: name, rules: compileRules(src), groups: map[groupRef]*group{}, alerts: map[string]*alertRef{}, pending: map[string]*group{}, gone: map[string]goneAlert{}}
		d.tenants[name] = ts
		return ts
	}
	if ts.rules.src != src {
		ts.rules = compileRules(src)
		ts.inhib = nil
		for _, g := range ts.groups {
			if r := ts.route(g.GroupState); r != nil {
				g.route = r
				continue
			}
			// Regrouping happens on the next call that has a context.
			g.route = nil
			ts.orphans = true
		}
	}
	return ts
}

// route returns the route of the current rules that g is a group of, or nil
// if its alerts must be regrouped. Like Alertmanager, which builds its
// aggregation groups anew on a reload, a group is the route's only if the
// route (same matchers and position: same id) still exists, sends to the
// group's receiver, still takes each of its alerts and groups each by the
// group's labels. Otherwise a changed receiver or group_by would leave the
// group as it was, notifying the old receiver every repeat_interval, while
// each re-sent alert also went to a new group.
func (ts *tenantState) route(g *GroupState) *dispatch.Route {
	r := ts.rules.routes[g.RouteID]
	if r == nil || r.RouteOpts.Receiver != g.Receiver {
		return nil
	}
	for _, a := range g.Alerts.All() {
		if groupLabelsOf(r, a.Labels) != g.Labels || !slices.Contains(ts.rules.match(a.Labels.Fingerprint(), a.LabelSet), r) {
			return nil
		}
	}
	return r
}

func (d *Dispatcher) addGroup(ts *tenantState, g *group) {
	ts.groups[g.ref()] = g
	for fp, a := range g.Alerts.All() {
		d.ref(ts, fp, a, g)
	}
	if g.Pending != nil {
		var n klaxonv1.Notification
		if n.UnmarshalVT(g.Pending) == nil {
			ts.pending[n.IdempotencyKey] = g
		}
	}
	d.schedule(g)
	ts.inhib = nil
}

func (d *Dispatcher) ref(ts *tenantState, fp string, a *Alert, g *group) {
	r := ts.alerts[fp]
	if r == nil {
		r = &alertRef{alert: a}
		ts.alerts[fp] = r
	}
	if a.UpdatedAt.After(r.alert.UpdatedAt) || r.alert == a {
		r.alert = a
	}
	if !slices.Contains(r.groups, g) {
		r.groups = append(r.groups, g)
	}
}

func (d *Dispatcher) unref(ts *tenantState, fp string, g *group) {
	if r := ts.alerts[fp]; r != nil {
		if i := slices.Index(r.groups, g); i >= 0 {
			r.groups = slices.Delete(r.groups, i, i+1)
		}
		if len(r.groups) == 0 {
			delete(ts.alerts, fp)
		}
	}
}

// Receive puts an ingested alert into the groups of every route it matches.
// now is when it was received.
func (d *Dispatcher) Receive(ctx context.Context, tenant string, pa *klaxonv1.Alert, now time.Time) error {
	return d.ReceiveFrom(ctx, tenant, pa, Origin{}, now)
}

// sourceAlertmanager is the envelope source of alerts an upstream
// Alertmanager sent by webhook (receiver.SourceAlertmanager; not imported:
// the engine does not depend on the HTTP receiver).
const sourceAlertmanager = "alertmanager"

// Origin is where an alert came from: the INGEST message, when the
// receiver took it in, and in which format.
type Origin struct {
	Seq        uint64    // stream sequence
	ReceivedAt time.Time // either zero: unknown, no staleness check
	// Source is the envelope's source. An upstream Alertmanager's webhook
	// (receiver.SourceAlertmanager) re-sends a firing group only every
	// repeat_interval, and says when an alert resolves: its firing alerts
	// have no end, and resolve_timeout does not resolve them.
	Source string
}

// ReceiveFrom is Receive of an alert that came in message o. An alert from a
// message older than the one that last changed it, or than the state in
// which it was resolved and dropped, is refused with ErrStale: at-least-once
// delivery redelivers a message whose batch was stored but not acknowledged
// when the engine crashed, possibly after newer ones (its resolution) were
// applied. Older means a lower sequence and also received before that state
// was applied, so a stream recreated with sequences from 1 does not make
// every new message look old.
func (d *Dispatcher) ReceiveFrom(ctx context.Context, tenant string, pa *klaxonv1.Alert, o Origin, now time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ts := d.tenant(tenant)
	if err := d.regroupOrphans(ctx, ts, now); err != nil {
		return err
	}
	a := fromProto(pa, now, ts.rules.resolveTimeout, o.Source == sourceAlertmanager)
	a.Seq = o.Seq
	if o.Seq != 0 && !o.ReceivedAt.IsZero() {
		if r := ts.alerts[a.Fingerprint]; r != nil && r.alert.Seq > o.Seq && o.ReceivedAt.Before(r.alert.UpdatedAt.Time()) {
			return fmt.Errorf("%w: alert %s from message %d, already updated by %d", ErrStale, a.Fingerprint, o.Seq, r.alert.Seq)
		}
		if g, ok := ts.gone[a.Fingerprint]; ok && g.seq >= o.Seq && o.ReceivedAt.Before(g.at) && now.Before(g.at.Add(d.cfg.StaleGuard)) {
			return fmt.Errorf("%w: alert %s from message %d, resolved after %d", ErrStale, a.Fingerprint, o.Seq, g.seq)
		}
	}
	if d.cfg.MaxActiveAlerts != nil && ts.alerts[a.Fingerprint] == nil && !a.ResolvedAt(now) {
		if limit := d.cfg.MaxActiveAlerts(tenant); limit > 0 && len(ts.alerts) >= limit {
			return fmt.Errorf("%w (%d): alert %s", ErrTooManyAlerts, limit, a.Fingerprint)
		}
	}
	return d.insert(ctx, ts, a, now, d.cfg.MaxGroupBytes)
}

// insert puts a into the groups of the routes it matches. A group whose
// alerts would take more than maxBytes with a (0: no bound) does not take
// it in if it is new there: insert then returns ErrGroupFull, once a is in
// every other group. Regrouping passes 0: alerts already held are moved,
// never dropped.
func (d *Dispatcher) insert(ctx context.Context, ts *tenantState, a *Alert, now time.Time, maxBytes int) error {
	if old := ts.alerts[a.Fingerprint]; old != nil {
		a = merge(old.alert, a, now)
	}
	var full error
	// The label set is built only when the route cache misses: a re-sent
	// alert (Prometheus resends every firing alert) finds its routes by
	// fingerprint.
	for _, r := range ts.rules.match(a.Labels.Fingerprint(), a.LabelSet) {
		ref := groupRef{ts.rules.ids[r], groupLabelsOf(r, a.Labels)}
		g := ts.groups[ref]
		if maxBytes > 0 && (g == nil || g.Alerts.Get(a.Fingerprint) == nil) {
			held := 0
			if g != nil {
				held = g.alertBytes()
			}
			if held+alertBytes(a) > maxBytes {
				full = errors.Join(full, fmt.Errorf("%w: group %s holds %d alerts (%d of %d bytes): alert %s", ErrGroupFull,
					groupID(ts.rules.keys[r], ref.labels), groupLen(g), held, maxBytes, a.Fingerprint))
				continue
			}
		}
		if g == nil {
			g = &group{route: r, GroupState: &GroupState{
				Tenant: ts.name, RouteID: ref.route, RouteKey: ts.rules.keys[r],
				Receiver: r.RouteOpts.Receiver, Labels: ref.labels,
			}}
			ts.groups[ref] = g
		}
		if g.Alerts.Len() == 0 && g.Pending == nil {
			// A new aggregation group (or a dormant one kept only for its
			// notification log): its timer starts now.
			g.Flushed = false
			g.Next = At(now.Add(r.RouteOpts.GroupWait))
			// Like Alertmanager: an alert older than group_wait flushes its
			// new group at once.
			if a.StartsAt.Time().Add(r.RouteOpts.GroupWait).Before(now) {
				g.Next = At(now)
			}
		}
		g.setAlert(a)
		d.ref(ts, a.Fingerprint, a, g)
		d.schedule(g)
		if err := d.cfg.Store.Put(ctx, g.GroupState); err != nil {
			return fmt.Errorf("store group %s: %w", g.Key(), err)
		}
	}
	// Every group holding the alert sees its latest version.
	if r := ts.alerts[a.Fingerprint]; r != nil {
		r.alert = a
		for _, g := range r.groups {
			g.setAlert(a)
		}
	}
	ts.inhib = nil
	return full
}

func groupLen(g *group) int {
	if g == nil {
		return 0
	}
	return g.Alerts.Len()
}

// regroupOrphans moves the alerts of groups that a rules reload left
// without a route (see tenantState.route) into the groups of the new tree.
func (d *Dispatcher) regroupOrphans(ctx context.Context, ts *tenantState, now time.Time) error {
	if !ts.orphans {
		return nil
	}
	ts.orphans = false
	// Every orphan leaves before any alert is regrouped: a reload that
	// changed a route's receiver orphans all its groups, and an alert
	// regrouped must not land in one of them still to be regrouped (nor
	// a group it lands in be deleted after it was written).
	var orphans []*group
	for id, g := range ts.groups {
		if g.route != nil {
			continue
		}
		delete(ts.groups, id)
		for fp := range g.Alerts.All() {
			d.unref(ts, fp, g)
		}
		if err := d.cfg.Store.Delete(ctx, g.GroupState); err != nil {
			return err
		}
		orphans = append(orphans, g)
	}
	for _, g := range orphans {
		if err := d.regroup(ctx, ts, g.GroupState, now); err != nil {
			return err
		}
	}
	return nil
}

// regroup puts the alerts of g, a group deleted from ts and from the Store,
// into the groups of the current rules.
func (d *Dispatcher) regroup(ctx context.Context, ts *tenantState, g *GroupState, now time.Time) error {
	for _, a := range g.Alerts.All() {
		if err := d.insert(ctx, ts, a, now, 0); err != nil {
			return err
		}
	}
	// Alertmanager keys its notification log by receiver and group key, not
	// by route position: a group that moved in the tree but kept its key and
	// receiver keeps its log, so the reload does not re-notify; and the
	// notification it decided and has not yet published, which the log
	// counts as sent: dropped, it was never sent at all.
	if g.Nflog == nil {
		return nil
	}
	key := g.Key()
	handed := false
	for _, ng := range ts.groups {
		if ng.Receiver == g.Receiver && ng.Nflog == nil && ng.Key() == key {
			ng.Nflog = g.Nflog
			if g.Pending != nil && ng.Pending == nil && !handed {
				var n klaxonv1.Notification
				if n.UnmarshalVT(g.Pending) == nil {
					ng.Pending, handed = g.Pending, true
					ts.pending[n.IdempotencyKey] = ng
				}
			}
			if err := d.cfg.Store.Put(ctx, ng.GroupState); err != nil {
				return err
			}
		}
	}
	if g.Pending != nil && !handed && d.cfg.Log != nil {
		d.cfg.Log.Warn("a rules change regrouped a group whose notification was not yet published; it is not sent (its receiver or grouping changed)",
			"tenant", g.Tenant, "receiver", g.Receiver, "group_key", key)
	}
	return nil
}

// fromProto is the alert pa received at now. A firing alert without an end
// resolves resolve_timeout after it was received, unless openEnded: it then
// has no end, and stays firing until a message resolves it.
func fromProto(pa *klaxonv1.Alert, now time.Time, resolveTimeout time.Duration, openEnded bool) *Alert {
	a := &Alert{Fingerprint: pa.GetFingerprint(), Labels: LabelsFromMap(pa.GetLabels()), Annotations: LabelsFromMap(pa.GetAnnotations()),
		GeneratorURL: pa.GetGeneratorUrl(), UpdatedAt: At(now)}
	if a.Fingerprint == "" {
		// LabelsToSignature is LabelSet.Fingerprint's hash, without the LabelSet.
		a.Fingerprint = model.Fingerprint(model.LabelsToSignature(pa.GetLabels())).String()
	}
	a.StartsAt = At(now)
	if pa.GetStartsAt() != nil {
		a.StartsAt = At(pa.GetStartsAt().AsTime())
	}
	switch {
	case pa.GetEndsAt() != nil:
		a.EndsAt = At(pa.GetEndsAt().AsTime())
	case pa.GetStatus() == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED:
		a.EndsAt = At(now)
	case openEnded:
		// An upstream Alertmanager's webhook: as for any webhook consumer
		// of Alertmanager, the alert fires until it is sent resolved. Its
		// unchanged group comes again only every repeat_interval (4h by
		// default): resolve_timeout would report it resolved in between.
	default:
		// Like Alertmanager: an alert without an end resolves
		// resolve_timeout after it was last received.
		a.EndsAt = At(now.Add(resolveTimeout))
		a.Timeout = true
	}
	return a
}

// merge is Alertmanager's rule for a re-sent alert (provider/mem Put and
// types.Alert.Merge): when the activity ranges overlap, keep the earliest
// start and the newer alert's end, unless the older one has a later explicit
// end; otherwise the new alert replaces the old one. An alert without an end
// (an upstream Alertmanager's firing alert) ends after any end: a firing
// update with an end (an API v2 client's, or resolve_timeout's) leaves it
// open, and one that resolves it resolves it.
func merge(old, a *Alert, now time.Time) *Alert {
	overlap := (a.end().After(old.StartsAt) && a.end().Before(old.end())) ||
		(a.StartsAt.After(old.StartsAt) && a.StartsAt.Before(old.end()))
	if !overlap {
		return a
	}
	if a.UpdatedAt.Before(old.UpdatedAt) {
		old, a = a, old
	}
	res := *a
	res.Seq = max(old.Seq, a.Seq)
	if old.StartsAt.Before(a.StartsAt) {
		res.StartsAt = old.StartsAt
	}
	if a.ResolvedAt(now) {
		if old.ResolvedAt(now) && old.EndsAt.After(a.EndsAt) {
			res.EndsAt = old.EndsAt
		}
	} else if old.end().After(a.end()) && !old.Timeout {
		res.EndsAt = old.EndsAt
		res.Timeout = false
	}
	return &res
}

// Commit writes the state changes of every call since the last Commit, if
// the Store defers them (KVStore); until it returns nil, the inputs of
// those calls must not be acknowledged. After an error the changes stay
// pending and the next Commit writes them again.
func (d *Dispatcher) Commit(ctx context.Context) error {
	c, ok := d.cfg.Store.(Committer)
	if !ok {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return c.Commit(ctx)
}

// NextDue is when the earliest group flushes, or false if none is waiting.
func (d *Dispatcher) NextDue() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.popStale()
	if len(d.due) == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, d.due[0].at), true
}

// Tick flushes every group due at or before now, in due order, and returns
// the notifications to publish: new ones and any earlier ones not yet
// acknowledged with Ack. Each is stored as pending in its group before it
// is returned, so after a crash the same notification (same idempotency
// key) is published again rather than lost or recomputed differently.
func (d *Dispatcher) Tick(ctx context.Context, now time.Time) ([]*klaxonv1.Notification, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*klaxonv1.Notification
	// Expired notification logs are swept once a minute, not on every tick.
	sweep := now.Sub(d.swept) >= time.Minute || now.Before(d.swept)
	if sweep {
		d.swept = now
	}
	for _, ts := range d.tenants {
		d.tenant(ts.name)
		if err := d.regroupOrphans(ctx, ts, now); err != nil {
			return nil, err
		}
		for key, g := range ts.pending {
			if ts.groups[g.ref()] != g || g.Pending == nil {
				delete(ts.pending, key) // its group was regrouped or destroyed
				continue
			}
			var n klaxonv1.Notification
			if err := n.UnmarshalVT(g.Pending); err == nil {
				out = append(out, &n)
			}
		}
		if !sweep {
			continue
		}
		for fp, g := range ts.gone {
			if now.Sub(g.at) >= d.cfg.StaleGuard {
				delete(ts.gone, fp)
			}
		}
		for _, g := range ts.groups {
			if g.Alerts.Len() == 0 && g.Pending == nil && g.Nflog != nil && now.Sub(g.Nflog.At) > nflogRetention {
				delete(ts.groups, g.ref())
				if err := d.cfg.Store.Delete(ctx, g.GroupState); err != nil {
					return out, err
				}
			}
		}
	}
	for _, g := range d.popDue(now) {
		ts := d.tenants[g.Tenant]
		if ts == nil || ts.groups[g.ref()] != g {
			continue // its tenant's rules were reloaded and it was regrouped
		}
		n, err := d.flush(ctx, ts, g, now)
		if err != nil {
			return out, err
		}
		if n != nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// pendingRetry is how soon a flush held by its group's pending notification
// is tried again: soon after the publish that Tick retries meanwhile, not at
// once (a publish failing fast would have the engine tick in a loop).
const pendingRetry = time.Second

// flush is Alertmanager's aggrGroup.flush followed by its notification
// pipeline for one group: time intervals, inhibition and silences filter,
// the notification log decides, resolved alerts that were dealt with leave
// the group, and an empty group is destroyed.
func (d *Dispatcher) flush(ctx context.Context, ts *tenantState, g *group, now time.Time) (*klaxonv1.Notification, error) {
	if g.Pending != nil {
		// The group's previous notification is not known to be published
		// (NOTIFY unavailable, or loaded pending after a restart: Tick
		// publishes it again), so this flush cannot decide. As Alertmanager
		// keeps a group's alerts when its notify fails, every alert stays,
		// resolved ones too: a resolution leaves the group only once a
		// flush has dealt with it (dropped here, it was never sent). The
		// flush is tried again pendingRetry later, not a group_interval
		// later, and nothing is written: the stored group is still due.
		g.Next = At(now.Add(min(pendingRetry, g.route.RouteOpts.GroupInterval)))
		d.schedule(g)
		return nil, nil
	}
	ro := g.route.RouteOpts
	g.Next = At(now.Add(ro.GroupInterval))
	g.Flushed = true
	defer d.schedule(g) // if alerts are left, at the next group_interval

	var resolvedHere []string
	var notify *klaxonv1.Notification
	for fp, a := range g.Alerts.All() {
		if a.ResolvedAt(now) {
			resolvedHere = append(resolvedHere, fp)
			if a.Seq != 0 {
				ts.gone[fp] = goneAlert{seq: a.Seq, at: now}
			}
		}
	}
	silent := d.cfg.SkipSilentReceivers && ts.rules.silent[g.Receiver]
	if !silent && !ts.rules.muted(g.route, now) {
		n, err := d.decide(ts, g, now)
		if err != nil {
			return nil, err
		}
		notify = n
	}
	for _, fp := range resolvedHere {
		g.deleteAlert(fp)
		d.unref(ts, fp, g)
		ts.inhib = nil
	}
	if g.Alerts.Len() == 0 && g.Pending == nil {
		return nil, d.retire(ctx, ts, g)
	}
	if err := d.cfg.Store.Put(ctx, g.GroupState); err != nil {
		return nil, fmt.Errorf("store group %s: %w", g.Key(), err)
	}
	return notify, nil
}

func (d *Dispatcher) notification(g *group, alerts []*Alert, firing bool, now time.Time) *klaxonv1.Notification {
	sortAlerts(alerts)
	n := &klaxonv1.Notification{Tenant: g.Tenant, Receiver: g.Receiver, GroupKey: g.Key(), GroupLabels: g.Labels.Map(),
		Status: klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED, CreatedAt: timestamppb.New(now)}
	if firing {
		n.Status = klaxonv1.AlertStatus_ALERT_STATUS_FIRING
	}
	for _, a := range alerts {
		n.Alerts = append(n.Alerts, a.proto(now))
	}
	n.IdempotencyKey = IdempotencyKey(n)
	return n
}

// Ack records that notifications returned by Tick are published: their
// groups forget them (and an emptied group is destroyed).
func (d *Dispatcher) Ack(ctx context.Context, ns ...*klaxonv1.Notification) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range ns {
		ts := d.tenants[n.Tenant]
		if ts == nil {
			continue
		}
		g := ts.pending[n.IdempotencyKey]
		if g == nil {
			continue
		}
		delete(ts.pending, n.IdempotencyKey)
		if ts.groups[g.ref()] != g || g.Pending == nil {
			continue // regrouped or destroyed meanwhile
		}
		g.Pending = nil
		if g.Alerts.Len() == 0 {
			if err := d.retire(ctx, ts, g); err != nil {
				return err
			}
			continue
		}
		if err := d.cfg.Store.Put(ctx, g.GroupState); err != nil {
			return err
		}
	}
	return nil
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sortAlerts orders alerts like Alertmanager's types.AlertSlice: by job,
// then instance, then the whole label set.
func sortAlerts(as []*Alert) {
	sort.SliceStable(as, func(i, j int) bool {
		for _, k := range []string{"job", "instance"} {
			a, b := as[i].Labels.Get(k), as[j].Labels.Get(k)
			if a != b {
				return a < b
			}
		}
		return as[i].Labels.Before(as[j].Labels)
	})
}

func tenantToken(t string) string { return bus.Token(t) }

// nflogRetention is how long a notification-log entry outlives its group
// (Alertmanager's --data.retention).
const nflogRetention = 120 * time.Hour

// retire ends an empty group. Alertmanager's notification log outlives
// aggregation groups: if the log still lists firing alerts (their
// resolution fell in a mute interval or was silenced), the group stays as a
// dormant record of that log, so the same alerts firing again are judged
// against it (repeat_interval) instead of notified as new.
func (d *Dispatcher) retire(ctx context.Context, ts *tenantState, g *group) error {
	if g.Nflog != nil && len(g.Nflog.Firing) > 0 {
		return d.cfg.Store.Put(ctx, g.GroupState)
	}
	delete(ts.groups, g.ref())
	if err := d.cfg.Store.Delete(ctx, g.GroupState); err != nil {
		return fmt.Errorf("delete group %s: %w", g.Key(), err)
	}
	return nil
}

// decide runs inhibition, silences and the notification log for a flush;
// it records a notification to send as the group's pending one.
func (d *Dispatcher) decide(ts *tenantState, g *group, now time.Time) (*klaxonv1.Notification, error) {
	firing, resolved := map[string]struct{}{}, map[string]struct{}{}
	var alerts []*Alert
	for fp, a := range g.Alerts.All() {
		ls := a.LabelSet()
		if ts.inhibited(ls, now) || (d.cfg.Silences != nil && len(d.cfg.Silences.Mutes(ts.name, ls)) > 0) {
			continue
		}
		alerts = append(alerts, a)
		if a.ResolvedAt(now) {
			resolved[fp] = struct{}{}
		} else {
			firing[fp] = struct{}{}
		}
	}
	// Alertmanager's MultiStage stops when no alert is left: a group whose
	// alerts are all silenced or inhibited leaves the log alone.
	if len(alerts) == 0 {
		return nil, nil
	}
	sendResolved := ts.rules.sendResolved[g.Receiver]
	reason := needsUpdate(g.Nflog, firing, resolved, sendResolved, g.route.RouteOpts.RepeatInterval, now)
	d.cfg.Log.Debug("flush", "tenant", ts.name, "group", logKey{g.GroupState}, "alerts", len(alerts), "reason", reason)
	if !reason.Notify() {
		return nil, nil
	}
	prev := g.Nflog
	g.Nflog = &NflogEntry{Firing: keys(firing), Resolved: keys(resolved), At: now}
	if prev != nil {
		g.Nflog.Sent, g.Nflog.SentAt = prev.Sent, prev.SentAt
	}
	if !sendResolved {
		// Like Alertmanager's RetryStage for such integrations: resolved
		// alerts are not sent, and nothing at all when only resolved alerts
		// are left (the log still records it).
		alerts = slices.DeleteFunc(alerts, func(a *Alert) bool { return a.ResolvedAt(now) })
	}
	if len(alerts) == 0 {
		return nil, nil
	}
	n := d.notification(g, alerts, len(firing) > 0, now)
	// Chained to the group's previous notification, so notifiers keep the
	// group's order (a resolve after its trigger) whatever replica or retry
	// delivers which.
	if g.Nflog.Sent != "" && g.Nflog.SentAt != nil {
		n.PreviousKey, n.PreviousAt = g.Nflog.Sent, timestamppb.New(*g.Nflog.SentAt)
	}
	g.Nflog.Sent, g.Nflog.SentAt = n.IdempotencyKey, &now
	data, err := n.MarshalVT()
	if err != nil {
		return nil, err
	}
	g.Pending = data
	ts.pending[n.IdempotencyKey] = g
	return n, nil
}
