package amapi

import (
	"net/http"
	"regexp"
	"sort"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"

	"github.com/klaxon-sh/klaxon/services/engine"
)

type receiverRef struct {
	Name string `json:"name"`
}

type alertStatus struct {
	InhibitedBy []string `json:"inhibitedBy"`
	SilencedBy  []string `json:"silencedBy"`
	MutedBy     []string `json:"mutedBy,omitempty"`
	State       string   `json:"state"`
}

type gettableAlert struct {
	Annotations  map[string]string `json:"annotations"`
	EndsAt       time.Time         `json:"endsAt"`
	Fingerprint  string            `json:"fingerprint"`
	Receivers    []receiverRef     `json:"receivers"`
	StartsAt     time.Time         `json:"startsAt"`
	Status       alertStatus       `json:"status"`
	UpdatedAt    time.Time         `json:"updatedAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
	Labels       map[string]string `json:"labels"`
}

type alertGroup struct {
	Alerts   []*gettableAlert  `json:"alerts"`
	Labels   map[string]string `json:"labels"`
	Receiver receiverRef       `json:"receiver"`
}

// alertFilter holds the query parameters of GET /api/v2/alerts[/groups].
type alertFilter struct {
	active, silenced, inhibited bool
	matchers                    labels.Matchers
	receiver                    *regexp.Regexp
}

func parseAlertFilter(r *http.Request) (*alertFilter, error) {
	f := &alertFilter{}
	var err error
	if f.active, err = boolParam(r, "active", true); err != nil {
		return nil, err
	}
	if f.silenced, err = boolParam(r, "silenced", true); err != nil {
		return nil, err
	}
	if f.inhibited, err = boolParam(r, "inhibited", true); err != nil {
		return nil, err
	}
	if f.matchers, err = filters(r); err != nil {
		return nil, err
	}
	if re := r.URL.Query().Get("receiver"); re != "" {
		if f.receiver, err = regexp.Compile("^(?:" + re + ")$"); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (f *alertFilter) keep(a *gettableAlert) bool {
	if !f.active && a.Status.State == "active" {
		return false
	}
	if !f.silenced && len(a.Status.SilencedBy) > 0 {
		return false
	}
	if !f.inhibited && len(a.Status.InhibitedBy) > 0 {
		return false
	}
	if f.receiver != nil {
		found := false
		for _, rc := range a.Receivers {
			found = found || f.receiver.MatchString(rc.Name)
		}
		if !found {
			return false
		}
	}
	return f.matchers.Matches(labelSetOf(a.Labels))
}

// state builds the API view of the tenant's unresolved alerts, each with its
// receivers and why it is suppressed (engine.Views, which the admin API
// shares), plus the groups holding them.
func (a *API) state(r *http.Request, tenant string) (map[string]*gettableAlert, []*engine.GroupState, error) {
	groups, err := a.cfg.Groups(r.Context(), tenant)
	if err != nil {
		return nil, nil, err
	}
	mutes := func(ls model.LabelSet) []string { return a.cfg.Silences.Mutes(tenant, ls) }
	views := engine.Views(a.cfg.Rules.Tenant(tenant), groups, mutes, a.cfg.Now(), false)
	alerts := make(map[string]*gettableAlert, len(views))
	for fp, v := range views {
		al := v.Alert
		ga := &gettableAlert{Annotations: al.Annotations.Map(), EndsAt: al.EndsAt.Time(), Fingerprint: fp, StartsAt: al.StartsAt.Time(),
			UpdatedAt: al.UpdatedAt.Time(), GeneratorURL: al.GeneratorURL, Labels: al.Labels.Map(),
			Status: alertStatus{InhibitedBy: []string{}, SilencedBy: []string{}, State: "active"}}
		if len(v.SilencedBy) > 0 {
			ga.Status.SilencedBy = v.SilencedBy
		}
		if v.InhibitedBy != "" {
			ga.Status.InhibitedBy = []string{v.InhibitedBy}
		}
		if v.Suppressed() {
			ga.Status.State = "suppressed"
		}
		for _, rc := range v.Receivers {
			ga.Receivers = append(ga.Receivers, receiverRef{Name: rc})
		}
		alerts[fp] = ga
	}
	return alerts, groups, nil
}

func (a *API) alerts(w http.ResponseWriter, r *http.Request) {
	tenant, ok := a.tenant(w, r)
	if !ok {
		return
	}
	f, err := parseAlertFilter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	alerts, _, err := a.state(r, tenant)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []*gettableAlert{}
	for _, ga := range alerts {
		if f.keep(ga) {
			out = append(out, ga)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Fingerprint < out[j].Fingerprint })
	writeJSON(w, http.StatusOK, out)
}

func (a *API) alertGroups(w http.ResponseWriter, r *http.Request) {
	tenant, ok := a.tenant(w, r)
	if !ok {
		return
	}
	f, err := parseAlertFilter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	alerts, groups, err := a.state(r, tenant)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []*alertGroup{}
	engine.SortGroups(groups)
	for _, g := range groups {
		ag := &alertGroup{Labels: g.Labels.Map(), Receiver: receiverRef{Name: g.Receiver}, Alerts: []*gettableAlert{}}
		if f.receiver != nil && !f.receiver.MatchString(g.Receiver) {
			continue
		}
		for fp := range g.Alerts.All() {
			if ga := alerts[fp]; ga != nil && f.keep(ga) {
				ag.Alerts = append(ag.Alerts, ga)
			}
		}
		if len(ag.Alerts) == 0 {
			continue
		}
		sort.Slice(ag.Alerts, func(i, j int) bool { return ag.Alerts[i].Fingerprint < ag.Alerts[j].Fingerprint })
		out = append(out, ag)
	}
	writeJSON(w, http.StatusOK, out)
}
