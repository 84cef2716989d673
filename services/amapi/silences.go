package amapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"

	"github.com/klaxon-sh/klaxon/services/engine/silence"
)

type silenceStatus struct {
	State string `json:"state"`
}

type gettableSilence struct {
	ID        string            `json:"id"`
	Status    silenceStatus     `json:"status"`
	UpdatedAt time.Time         `json:"updatedAt"`
	Comment   string            `json:"comment"`
	CreatedBy string            `json:"createdBy"`
	EndsAt    time.Time         `json:"endsAt"`
	Matchers  []silence.Matcher `json:"matchers"`
	StartsAt  time.Time         `json:"startsAt"`
}

type postableSilence struct {
	ID        string            `json:"id"`
	Comment   string            `json:"comment"`
	CreatedBy string            `json:"createdBy"`
	EndsAt    time.Time         `json:"endsAt"`
	Matchers  []postableMatcher `json:"matchers"`
	StartsAt  time.Time         `json:"startsAt"`
}

// postableMatcher: isEqual is optional on the wire and defaults to true.
type postableMatcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual *bool  `json:"isEqual"`
}

func (a *API) gettable(s *silence.Silence) gettableSilence {
	return gettableSilence{ID: s.ID, Status: silenceStatus{State: s.State(a.cfg.Now())}, UpdatedAt: s.UpdatedAt,
		Comment: s.Comment, CreatedBy: s.CreatedBy, EndsAt: s.EndsAt, Matchers: s.Matchers, StartsAt: s.StartsAt}
}

func (a *API) listSilences(w http.ResponseWriter, r *http.Request) {
	tenant, ok := a.tenant(w, r)
	if !ok {
		return
	}
	ms, err := filters(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	sils, err := a.cfg.Silences.List(r.Context(), tenant)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	silence.Sort(sils, a.cfg.Now())
	out := []gettableSilence{}
	for _, s := range sils {
		if silenceMatchesFilter(s, ms) {
			out = append(out, a.gettable(s))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// silenceMatchesFilter is Alertmanager's rule: the filter matchers must
// match the label set made of the silence's matcher names and values.
func silenceMatchesFilter(s *silence.Silence, ms labels.Matchers) bool {
	ls := model.LabelSet{}
	for _, m := range s.Matchers {
		ls[model.LabelName(m.Name)] = model.LabelValue(m.Value)
	}
	return ms.Matches(ls)
}

// maxSilenceBytes bounds a posted silence: amtool's and Grafana's are a few
// hundred bytes.
const maxSilenceBytes = 1 << 20

func (a *API) postSilence(w http.ResponseWriter, r *http.Request) {
	tenant, ok := a.tenant(w, r)
	if !ok {
		return
	}
	var ps postableSilence
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSilenceBytes)).Decode(&ps); err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("silence larger than %d bytes", mbe.Limit))
			return
		}
		writeError(w, http.StatusBadRequest, "decode silence: "+err.Error())
		return
	}
	s := &silence.Silence{ID: ps.ID, Tenant: tenant, Comment: ps.Comment, CreatedBy: ps.CreatedBy,
		StartsAt: ps.StartsAt, EndsAt: ps.EndsAt}
	for _, m := range ps.Matchers {
		eq := m.IsEqual == nil || *m.IsEqual
		s.Matchers = append(s.Matchers, silence.Matcher{Name: m.Name, Value: m.Value, IsRegex: m.IsRegex, IsEqual: eq})
	}
	limit := 0
	if a.cfg.MaxSilences != nil {
		limit = a.cfg.MaxSilences(tenant)
	}
	got, err := a.cfg.Silences.SetLimited(r.Context(), s, limit)
	switch {
	case errors.Is(err, silence.ErrLimit):
		// Alertmanager (and so Mimir) answers 400 with the store's error
		// when --silences.max-silences is reached.
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, silence.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, silence.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.log.Info("silence set", "tenant", tenant, "id", got.ID, "by", got.CreatedBy)
	writeJSON(w, http.StatusOK, map[string]string{"silenceID": got.ID})
}

func (a *API) getSilence(w http.ResponseWriter, r *http.Request) {
	tenant, ok := a.tenant(w, r)
	if !ok {
		return
	}
	s, err := a.cfg.Silences.Get(r.Context(), tenant, r.PathValue("id"))
	if isNotFound(err) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, a.gettable(s))
}

func (a *API) deleteSilence(w http.ResponseWriter, r *http.Request) {
	tenant, ok := a.tenant(w, r)
	if !ok {
		return
	}
	_, err := a.cfg.Silences.Expire(r.Context(), tenant, r.PathValue("id"))
	switch {
	case isNotFound(err):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, silence.ErrExpired):
		// Idempotent, as in Alertmanager (since 0.26): expiring an expired
		// silence (twice, or Grafana's Expire on one that just ended) is 200.
		w.WriteHeader(http.StatusOK)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		a.log.Info("silence expired", "tenant", tenant, "id", r.PathValue("id"))
		w.WriteHeader(http.StatusOK)
	}
}
