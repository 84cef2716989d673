// Package amapi serves the parts of Alertmanager's API v2 that amtool and
// dashboards use (silences, alerts, alert groups, status) on Klaxon's HTTP
// port, from the engine's state in JetStream KV, so it runs in any process
// (receiver, admin), not only the engine's. POST /api/v2/alerts is ingest
// and belongs to the receiver; this package registers every other route.
package amapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"

	"github.com/klaxon-sh/klaxon/services/engine"
	"github.com/klaxon-sh/klaxon/services/engine/silence"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// DefaultTenant serves requests without X-Scope-OrgID.
const DefaultTenant = "default"

// Groups reads the stored aggregation groups of a tenant.
type Groups func(ctx context.Context, tenant string) ([]*engine.GroupState, error)

// Authenticator maps a bearer token and the requested tenant to the tenant
// the caller may act as (*ruleset.Tenants implements it); nil = no auth.
type Authenticator interface {
	Authorize(token, want string) (string, error)
}

// Config of the API.
type Config struct {
	Groups   Groups
	Silences *silence.Store
	Rules    *ruleset.Holder
	Auth     Authenticator
	// MaxSilences is a tenant's limit of active and pending silences
	// (tenants.yml max_silences; 0 = unlimited). Nil: no limits.
	MaxSilences func(tenant string) int
	Now         func() time.Time
	// Version is reported by /api/v2/status.
	Version string
}

// API serves Alertmanager API v2 routes.
type API struct {
	cfg     Config
	log     *slog.Logger
	started time.Time
}

// New builds the API.
func New(cfg Config, log *slog.Logger) *API {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &API{cfg: cfg, log: log, started: cfg.Now()}
}

// Register adds the routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v2/status", a.status)
	mux.HandleFunc("GET /api/v2/receivers", a.receivers)
	mux.HandleFunc("GET /api/v2/alerts", a.alerts)
	mux.HandleFunc("GET /api/v2/alerts/groups", a.alertGroups)
	mux.HandleFunc("GET /api/v2/silences", a.listSilences)
	mux.HandleFunc("POST /api/v2/silences", a.postSilence)
	mux.HandleFunc("GET /api/v2/silence/{id}", a.getSilence)
	mux.HandleFunc("DELETE /api/v2/silence/{id}", a.deleteSilence)
}

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (a *API) tenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	t := r.Header.Get("X-Scope-OrgID")
	if a.cfg.Auth != nil {
		token := ruleset.BearerToken(r)
		if u, p, ok := r.BasicAuth(); ok && token == "" {
			// tenant:token in the URL's user info, as the receiver takes it:
			// amtool --alertmanager.url=http://tenant:token@host sends it so.
			token = p
			if t == "" && tenantRE.MatchString(u) {
				t = u
			}
		}
		got, err := a.cfg.Auth.Authorize(token, t)
		if err != nil {
			// 401 without or with an unknown token, 403 with another
			// tenant's, 400 for an admin token naming no tenant.
			code := http.StatusUnauthorized
			var ae *ruleset.AuthError
			if errors.As(err, &ae) && ae.Status != 0 {
				code = ae.Status
			}
			writeError(w, code, err.Error())
			return "", false
		}
		t = got
	}
	if t == "" {
		t = DefaultTenant
	}
	if !tenantRE.MatchString(t) {
		writeError(w, http.StatusBadRequest, "X-Scope-OrgID: tenant must match "+tenantRE.String())
		return "", false
	}
	return t, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers like Alertmanager's API: a JSON string body.
func writeError(w http.ResponseWriter, code int, msg string) { writeJSON(w, code, msg) }

// filters parses the repeated filter parameter (Alertmanager matchers).
func filters(r *http.Request) (labels.Matchers, error) {
	var ms labels.Matchers
	for _, f := range r.URL.Query()["filter"] {
		m, err := labels.ParseMatcher(f)
		if err != nil {
			return nil, fmt.Errorf("filter %q: %w", f, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

func boolParam(r *http.Request, name string, def bool) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	return strconv.ParseBool(v)
}

type versionInfo struct {
	Branch    string `json:"branch"`
	BuildDate string `json:"buildDate"`
	BuildUser string `json:"buildUser"`
	GoVersion string `json:"goVersion"`
	Revision  string `json:"revision"`
	Version   string `json:"version"`
}

type clusterStatus struct {
	Name   string `json:"name,omitempty"`
	Status string `json:"status"`
	Peers  []any  `json:"peers"`
}

type amStatus struct {
	Cluster     clusterStatus     `json:"cluster"`
	Config      map[string]string `json:"config"`
	Uptime      time.Time         `json:"uptime"`
	VersionInfo versionInfo       `json:"versionInfo"`
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	tenant, ok := a.tenant(w, r)
	if !ok {
		return
	}
	orig := ""
	if t := a.cfg.Rules.Tenant(tenant); t != nil && t.Config != nil {
		orig = t.Config.String()
	}
	v := a.cfg.Version
	if v == "" {
		v = "klaxon"
	}
	writeJSON(w, http.StatusOK, amStatus{
		Cluster:     clusterStatus{Status: "disabled", Peers: []any{}},
		Config:      map[string]string{"original": orig},
		Uptime:      a.started,
		VersionInfo: versionInfo{Version: v, Branch: "main", GoVersion: "go", Revision: "", BuildDate: "", BuildUser: "klaxon"},
	})
}

func (a *API) receivers(w http.ResponseWriter, r *http.Request) {
	tenant, ok := a.tenant(w, r)
	if !ok {
		return
	}
	out := []map[string]string{}
	if t := a.cfg.Rules.Tenant(tenant); t != nil && t.Config != nil {
		for _, rc := range t.Config.Receivers {
			out = append(out, map[string]string{"name": rc.Name})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func isNotFound(err error) bool { return errors.Is(err, silence.ErrNotFound) }
