package heartbeat

import (
	"encoding/json"
	"net/http"
	"time"
)

// View is what GET /api/v1/heartbeats/{name} returns: the heartbeat and its
// state, the page derived alerts link to (generatorURL).
type View struct {
	Name        string            `json:"name"`
	Interval    string            `json:"interval"`
	Grace       string            `json:"grace"`
	Labels      map[string]string `json:"labels,omitempty"`
	ArmedAt     *time.Time        `json:"armed_at,omitempty"`
	LastSeen    *time.Time        `json:"last_seen,omitempty"`
	Firing      bool              `json:"firing"`
	FiringSince *time.Time        `json:"firing_since,omitempty"`
	StaleAfter  *time.Time        `json:"stale_after,omitempty"`
}

// Register serves GET /api/v1/heartbeats and GET /api/v1/heartbeats/{name}
// (tenant from X-Scope-OrgID or ?tenant=, default "default").
func (m *Monitor) Register(mux *http.ServeMux, auth func(*http.Request) (string, int, error)) {
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
		out := []View{}
		if t := m.rules.Tenant(tenant); t != nil {
			for i := range t.Heartbeats {
				hb := &t.Heartbeats[i]
				if name != "" && hb.Name != name {
					continue
				}
				v := View{Name: hb.Name, Interval: hb.Interval.String(), Grace: hb.Grace.String(), Labels: hb.Labels}
				raw, _, err := m.kv.Read(r.Context(), m.key(tenant, hb.Name))
				var s state
				if err == nil && raw != nil && json.Unmarshal(raw, &s) == nil {
					v.ArmedAt = &s.ArmedAt
					if !s.LastSeen.IsZero() {
						v.LastSeen = &s.LastSeen
					}
					if !s.FiringSince.IsZero() {
						v.Firing, v.FiringSince = true, &s.FiringSince
					}
					stale := s.ref().Add(time.Duration(hb.Interval) + time.Duration(hb.Grace))
					v.StaleAfter = &stale
				}
				out = append(out, v)
			}
		}
		if name != "" {
			if len(out) == 0 {
				writeJSON(w, http.StatusNotFound, map[string]string{"status": "error", "error": "no heartbeat " + name})
				return
			}
			writeJSON(w, http.StatusOK, out[0])
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"heartbeats": out})
	}
	mux.HandleFunc("GET /api/v1/heartbeats", h)
	mux.HandleFunc("GET /api/v1/heartbeats/{name}", h)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
