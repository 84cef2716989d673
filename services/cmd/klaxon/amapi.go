package main

import (
	"context"

	"github.com/klaxon-sh/klaxon/services/amapi"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/engine"
	"github.com/klaxon-sh/klaxon/services/engine/silence"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// openSilencesAndGroups opens the silence store (kept current from KV until
// ctx ends) and a reader of the engine's groups.
func openSilencesAndGroups(ctx context.Context, b *bus.Bus) (*silence.Store, *engine.GroupReader, error) {
	sil, err := silence.NewKV(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	if err := sil.Load(ctx); err != nil {
		return nil, nil, err
	}
	groups, err := engine.NewGroupReader(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	return sil, groups, nil
}

// amapiTenancy: with --auth the Alertmanager API takes the same bearer
// tokens as ingest, and POST /api/v2/silences keeps to max_silences as the
// admin API's CreateSilence does.
func amapiTenancy(c *runConfig, cfg *amapi.Config) error {
	if !c.auth {
		return nil
	}
	tenants, err := ruleset.LoadTenants(c.rules + "/tenants.yml")
	if err != nil {
		return err
	}
	cfg.Auth = tenants
	cfg.MaxSilences = func(t string) int { return tenants.Tenants[t].Limits.MaxSilences }
	return nil
}
