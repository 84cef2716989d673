package main

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/klaxon-sh/klaxon/services/admin"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/engine"
	"github.com/klaxon-sh/klaxon/services/engine/silence"
	"github.com/klaxon-sh/klaxon/services/ruleset"
	slorunner "github.com/klaxon-sh/klaxon/services/slo/runner"
)

// newAdmin builds the gRPC admin API for the admin target (nil otherwise:
// the gRPC port then serves only health and reflection). It lives beside
// run.go so the admin wiring grows here, not in runTargets. Alerts and
// silences come from the engine's state in KV (the groups reader and the
// silence store openSilencesAndGroups opened), so the admin target serves
// them in a process of its own too.
func newAdmin(c *runConfig, b *bus.Bus, rules *ruleset.Holder, reload func(string) error, slos admin.SLOs,
	silences *silence.Store, groups *engine.GroupReader, log *slog.Logger, reg prometheus.Registerer) (*admin.Server, error) {
	if !c.has("admin") {
		return nil, nil
	}
	state := &admin.EngineState{Groups: groups.Groups, Silences: silences, Rules: rules}
	cfg := admin.Config{Bus: b, Rules: rules, Reload: reload, SLOs: slos, Alerts: state, Silences: state}
	if c.auth {
		tenants, err := ruleset.LoadTenants(c.rules + "/tenants.yml")
		if err != nil {
			return nil, err
		}
		cfg.Tenants = tenants
		// Tenant limits are read with the tokens, as ingest_per_second is.
		state.MaxSilences = func(t string) int { return tenants.Tenants[t].Limits.MaxSilences }
	}
	return admin.New(cfg, log, reg)
}

// sloAuth authorizes GET /api/v1/slo with the same tokens as ingest when
// --auth is on.
func sloAuth(c *runConfig) slorunner.Authorizer {
	if !c.auth {
		return nil
	}
	return func(r *http.Request) (string, int, error) {
		tenants, err := ruleset.LoadTenants(c.rules + "/tenants.yml")
		if err != nil {
			return "", http.StatusServiceUnavailable, err
		}
		t, err := tenants.Authorize(ruleset.BearerToken(r), r.Header.Get("X-Scope-OrgID"))
		if err != nil {
			var ae *ruleset.AuthError
			if errors.As(err, &ae) {
				return "", ae.Status, err
			}
			return "", http.StatusUnauthorized, err
		}
		return t, 0, nil
	}
}

// adminOnly guards POST /-/reload with --auth: a reload acts for every
// tenant and its answer lists every tenant's rule errors, so it takes an
// admin token; 401 without or with an unknown token, 403 with a tenant's.
// (The gRPC ReloadRules also takes tenant tokens: it shows a tenant only
// its own errors.)
func adminOnly(c *runConfig, h http.HandlerFunc) http.HandlerFunc {
	if !c.auth {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		tenants, err := ruleset.LoadTenants(c.rules + "/tenants.yml")
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		switch tok := ruleset.BearerToken(r); {
		case tok == "":
			http.Error(w, "missing bearer token", http.StatusUnauthorized)
		case tenants.IsAdmin(tok):
			h(w, r)
		case tenants.TokenTenant(tok) != "":
			http.Error(w, "only admin tokens may reload the rules of every tenant", http.StatusForbidden)
		default:
			http.Error(w, "unknown bearer token", http.StatusUnauthorized)
		}
	}
}
