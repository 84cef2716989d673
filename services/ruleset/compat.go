package ruleset

import (
	"log/slog"

	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/matcher/compat"
)

// Alertmanager (0.27 and later) starts in its matchers' "fallback" mode:
// UTF-8 label names (group_by: [service.name], matchers on "service.name")
// are valid, and a matcher the new parser refuses is read by the classic
// one. Its config and matcher packages start in classic mode until the
// binary says otherwise (Alertmanager's main does, from its feature
// flags), so a file Alertmanager loads was refused here.
func init() {
	compat.InitFromFlags(slog.New(slog.DiscardHandler), featurecontrol.NoopFlags{})
}
