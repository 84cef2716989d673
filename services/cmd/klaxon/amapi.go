package main

import (
	"context"

	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/engine"
	"github.com/klaxon-sh/klaxon/services/engine/silence"
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
