package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/engine"
	"github.com/klaxon-sh/klaxon/services/engine/silence"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// EngineState implements Alerts and Silences over the engine's state in
// JetStream KV, so any process can serve them (the engine need not run
// here): the stored aggregation groups and the silence store. Alerts are
// built by engine.Views, as the Alertmanager API v2 builds them, so both
// APIs show the same receivers, silences and inhibitions.
type EngineState struct {
	// Groups reads a tenant's stored groups (engine.GroupReader.Groups).
	Groups func(ctx context.Context, tenant string) ([]*engine.GroupState, error)
	// Silences is the silence store; Load it so its Mutes sees silences
	// other processes create.
	Silences *silence.Store
	// Rules gives each tenant's inhibit rules.
	Rules *ruleset.Holder
	// MaxSilences is a tenant's limit of active and pending silences
	// (tenants.yml max_silences; 0 = unlimited). Nil: no limits.
	MaxSilences func(tenant string) int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

var (
	_ Alerts   = (*EngineState)(nil)
	_ Silences = (*EngineState)(nil)
)

func (e *EngineState) now() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

// ListAlerts implements Alerts: every alert the tenant's groups hold,
// resolved ones included (the server filters).
func (e *EngineState) ListAlerts(ctx context.Context, tenant string) ([]*adminv1.AlertState, error) {
	if tenant == "" {
		// The group reader reads every tenant for "": never here.
		return nil, fmt.Errorf("%w: no tenant", ErrInvalid)
	}
	groups, err := e.Groups(ctx, tenant)
	if err != nil {
		return nil, err
	}
	now := e.now()
	mutes := func(ls model.LabelSet) []string { return e.Silences.Mutes(tenant, ls) }
	views := engine.Views(e.Rules.Tenant(tenant), groups, mutes, now, true)
	out := make([]*adminv1.AlertState, 0, len(views))
	for fp, v := range views {
		out = append(out, alertState(tenant, fp, v, now))
	}
	// By fingerprint, so alerts that started together list in a stable order
	// (the server sorts by start time, stably).
	slices.SortFunc(out, func(a, b *adminv1.AlertState) int { return strings.Compare(a.GetFingerprint(), b.GetFingerprint()) })
	return out, nil
}

func alertState(tenant, fp string, v *engine.AlertView, now time.Time) *adminv1.AlertState {
	a := v.Alert
	st := &adminv1.AlertState{
		Tenant: tenant, Fingerprint: fp, Labels: a.Labels.Map(), Annotations: a.Annotations.Map(),
		Status:   klaxonv1.AlertStatus_ALERT_STATUS_FIRING,
		StartsAt: timestamppb.New(a.StartsAt.Time()), UpdatedAt: timestamppb.New(a.UpdatedAt.Time()),
		GeneratorUrl: a.GeneratorURL, Receivers: v.Receivers, SilencedBy: v.SilencedBy,
	}
	if !a.EndsAt.IsZero() {
		st.EndsAt = timestamppb.New(a.EndsAt.Time())
	}
	if a.ResolvedAt(now) {
		st.Status = klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED
	}
	if v.InhibitedBy != "" {
		st.InhibitedBy = []string{v.InhibitedBy}
	}
	return st
}

// CreateSilence implements Silences: always a new silence (the request's id
// is ignored), refused with ErrLimit once the tenant has max_silences
// active or pending ones, as Alertmanager's --silences.max-silences.
func (e *EngineState) CreateSilence(ctx context.Context, tenant string, s *adminv1.Silence) (*adminv1.Silence, error) {
	sil := &silence.Silence{Tenant: tenant, CreatedBy: s.GetCreatedBy(), Comment: s.GetComment()}
	if s.GetStartsAt() != nil {
		sil.StartsAt = s.GetStartsAt().AsTime()
	}
	if s.GetEndsAt() != nil {
		sil.EndsAt = s.GetEndsAt().AsTime()
	}
	for _, m := range s.GetMatchers() {
		sm, err := silenceMatcher(m)
		if err != nil {
			return nil, err
		}
		sil.Matchers = append(sil.Matchers, sm)
	}
	limit := 0
	if e.MaxSilences != nil {
		limit = e.MaxSilences(tenant)
	}
	got, err := e.Silences.SetLimited(ctx, sil, limit)
	if err != nil {
		return nil, silenceError(err)
	}
	return e.apiSilence(got), nil
}

// ExpireSilence implements Silences. Another tenant's id is NotFound: the
// store is keyed by tenant.
func (e *EngineState) ExpireSilence(ctx context.Context, tenant, id string) (*adminv1.Silence, error) {
	got, err := e.Silences.Expire(ctx, tenant, id)
	if err != nil {
		return nil, silenceError(err)
	}
	return e.apiSilence(got), nil
}

// ListSilences implements Silences: the tenant's silences, expired ones
// within retention included, in Alertmanager's order.
func (e *EngineState) ListSilences(ctx context.Context, tenant string) ([]*adminv1.Silence, error) {
	all, err := e.Silences.List(ctx, tenant)
	if err != nil {
		return nil, err
	}
	silence.Sort(all, e.now())
	out := make([]*adminv1.Silence, len(all))
	for i, s := range all {
		out[i] = e.apiSilence(s)
	}
	return out, nil
}

func (e *EngineState) apiSilence(s *silence.Silence) *adminv1.Silence {
	out := &adminv1.Silence{Id: s.ID, StartsAt: timestamppb.New(s.StartsAt), EndsAt: timestamppb.New(s.EndsAt),
		UpdatedAt: timestamppb.New(s.UpdatedAt), CreatedBy: s.CreatedBy, Comment: s.Comment}
	switch s.State(e.now()) {
	case silence.StatePending:
		out.State = adminv1.SilenceState_SILENCE_STATE_PENDING
	case silence.StateActive:
		out.State = adminv1.SilenceState_SILENCE_STATE_ACTIVE
	case silence.StateExpired:
		out.State = adminv1.SilenceState_SILENCE_STATE_EXPIRED
	}
	for _, m := range s.Matchers {
		out.Matchers = append(out.Matchers, apiMatcher(m))
	}
	return out
}

// silenceMatcher maps an API matcher to the store's Alertmanager v2 form:
// =~ and !~ are regexes, = and =~ are equal.
func silenceMatcher(m *adminv1.Matcher) (silence.Matcher, error) {
	sm := silence.Matcher{Name: m.GetName(), Value: m.GetValue()}
	switch m.GetType() {
	case adminv1.MatcherType_MATCHER_TYPE_EQUAL, adminv1.MatcherType_MATCHER_TYPE_UNSPECIFIED:
		sm.IsEqual = true
	case adminv1.MatcherType_MATCHER_TYPE_NOT_EQUAL:
	case adminv1.MatcherType_MATCHER_TYPE_REGEXP:
		sm.IsRegex, sm.IsEqual = true, true
	case adminv1.MatcherType_MATCHER_TYPE_NOT_REGEXP:
		sm.IsRegex = true
	default:
		return sm, fmt.Errorf("%w: matcher %s: unknown type %v", ErrInvalid, m.GetName(), m.GetType())
	}
	return sm, nil
}

func apiMatcher(m silence.Matcher) *adminv1.Matcher {
	t := adminv1.MatcherType_MATCHER_TYPE_EQUAL
	switch {
	case m.IsRegex && m.IsEqual:
		t = adminv1.MatcherType_MATCHER_TYPE_REGEXP
	case m.IsRegex:
		t = adminv1.MatcherType_MATCHER_TYPE_NOT_REGEXP
	case !m.IsEqual:
		t = adminv1.MatcherType_MATCHER_TYPE_NOT_EQUAL
	}
	return &adminv1.Matcher{Name: m.Name, Value: m.Value, Type: t}
}

// silenceError maps the store's sentinels to the server's, keeping the
// store's message.
func silenceError(err error) error {
	switch {
	case errors.Is(err, silence.ErrNotFound):
		return also{err, ErrNotFound}
	case errors.Is(err, silence.ErrInvalid):
		return also{err, ErrInvalid}
	case errors.Is(err, silence.ErrLimit):
		return also{err, ErrLimit}
	case errors.Is(err, silence.ErrExpired):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return err
}

// also is err that is also the sentinel is (for errors.Is), with err's
// message.
type also struct{ err, is error }

func (a also) Error() string   { return a.err.Error() }
func (a also) Unwrap() []error { return []error{a.err, a.is} }
