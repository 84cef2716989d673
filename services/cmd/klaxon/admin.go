package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/klaxon-sh/klaxon/services/admin"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// newAdmin builds the gRPC admin API for the admin target (nil otherwise:
// the gRPC port then serves only health and reflection). It lives beside
// run.go so the admin wiring grows here, not in runTargets.
func newAdmin(c *runConfig, b *bus.Bus, rules *ruleset.Holder, reload func(string) error, log *slog.Logger, reg prometheus.Registerer) (*admin.Server, error) {
	if !c.has("admin") {
		return nil, nil
	}
	cfg := admin.Config{Bus: b, Rules: rules, Reload: reload}
	if c.auth {
		tenants, err := ruleset.LoadTenants(c.rules + "/tenants.yml")
		if err != nil {
			return nil, err
		}
		cfg.Tenants = tenants
	}
	return admin.New(cfg, log, reg)
}
