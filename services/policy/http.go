package policy

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/klaxon-sh/klaxon/services/bus"
)

// KeyView is one counted key of a policy.
type KeyView struct {
	Labels      map[string]string `json:"labels"`
	Recent      []time.Time       `json:"recent_occurrences"`
	Total       uint64            `json:"occurrences_total"`
	Firing      bool              `json:"firing"`
	FiringSince *time.Time        `json:"firing_since,omitempty"`
	ResolvesAt  *time.Time        `json:"resolves_at,omitempty"`
}

// PolicyView is what GET /api/v1/policies/{name} returns: the policy and
// its keys, the page derived alerts link to (generatorURL).
type PolicyView struct {
	Name      string            `json:"name"`
	Match     []string          `json:"match"`
	Key       []string          `json:"key"`
	Threshold int               `json:"threshold"`
	Window    string            `json:"window"`
	Labels    map[string]string `json:"labels"`
	Keys      []KeyView         `json:"keys"`
}

// Register serves GET /api/v1/policies and GET /api/v1/policies/{name}
// (tenant from X-Scope-OrgID or ?tenant=, default "default"; at most 1000 keys).
func (e *Evaluator) Register(mux *http.ServeMux, auth func(*http.Request) (string, int, error)) {
	h := func(w http.ResponseWriter, r *http.Request) {
		tenant := r.Header.Get("X-Scope-OrgID")
		if tenant == "" {
			tenant = r.URL.Query().Get("tenant")
		}
		if auth != nil {
			t, code, err := auth(r)
			if err != nil {
				writeJSON(w, code, map[string]string{"status": "error", "error": err.Error()})
				return
			}
			tenant = t
		}
		if tenant == "" {
			tenant = "default"
		}
		name := r.PathValue("name")
		t := e.rules.Tenant(tenant)
		var out []PolicyView
		if t != nil {
			for i := range t.Policies {
				p := &t.Policies[i]
				if name != "" && p.Name != name {
					continue
				}
				v := PolicyView{Name: p.Name, Key: p.Key, Threshold: p.Threshold, Window: model.Duration(p.Window).String(), Labels: p.Labels, Keys: []KeyView{}}
				for _, m := range p.Match {
					v.Match = append(v.Match, m.String())
				}
				if name != "" {
					v.Keys = e.keys(r, tenant, p.Name, p.Threshold, time.Duration(p.Window))
				}
				out = append(out, v)
			}
		}
		if name != "" {
			if len(out) == 0 {
				writeJSON(w, http.StatusNotFound, map[string]string{"status": "error", "error": "no policy " + name})
				return
			}
			writeJSON(w, http.StatusOK, out[0])
			return
		}
		if out == nil {
			out = []PolicyView{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"policies": out})
	}
	mux.HandleFunc("GET /api/v1/policies", h)
	mux.HandleFunc("GET /api/v1/policies/{name}", h)
}

func (e *Evaluator) keys(r *http.Request, tenant, policy string, threshold int, window time.Duration) []KeyView {
	out := []KeyView{}
	lister, err := e.kv.ListKeys(r.Context())
	if err != nil {
		return out
	}
	defer func() { _ = lister.Stop() }()
	prefix := bus.Token(tenant) + "." + bus.Token(policy) + "."
	for k := range lister.Keys() {
		if !strings.HasPrefix(k, prefix) || len(out) >= 1000 {
			continue
		}
		raw, _, err := e.kv.Read(r.Context(), k)
		if err != nil || raw == nil {
			continue
		}
		var rec record
		if rec.unmarshal(raw) != nil {
			continue
		}
		v := KeyView{Labels: rec.Labels, Total: rec.Total, Firing: !rec.FiringSince.IsZero()}
		for _, o := range rec.Recent {
			v.Recent = append(v.Recent, o.At)
		}
		if v.Firing {
			fs, ra := rec.FiringSince, rec.ResolvesAt(threshold, window)
			v.FiringSince, v.ResolvesAt = &fs, &ra
		}
		out = append(out, v)
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
