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
func newAdmin(c *runConfig, tenants *ruleset.Tenants, b *bus.Bus, rules *ruleset.Holder, reload func(string) error, slos admin.SLOs,
	silences *silence.Store, groups *engine.GroupReader, log *slog.Logger, reg prometheus.Registerer) (*admin.Server, error) {
	if !c.has("admin") {
		return nil, nil
	}
	state := &admin.EngineState{Groups: groups.Groups, Silences: silences, Rules: rules}
	cfg := admin.Config{Bus: b, Rules: rules, Reload: reload, SLOs: slos, Alerts: state, Silences: state}
	if tenants != nil {
		cfg.Tenants = tenants
		// Tenant limits are read with the tokens, as ingest_per_second is.
		state.MaxSilences = func(t string) int { return tenants.Limits(t).MaxSilences }
	}
	return admin.New(cfg, log, reg)
}

// sloAuth authorizes GET /api/v1/slo, /policies and /heartbeats with the
// same tokens as ingest when --auth is on (tenants not nil).
func sloAuth(tenants *ruleset.Tenants) slorunner.Authorizer {
	if tenants == nil {
		return nil
	}
	return func(r *http.Request) (string, int, error) {
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
func adminOnly(tenants *ruleset.Tenants, h http.HandlerFunc) http.HandlerFunc {
	if tenants == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
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
