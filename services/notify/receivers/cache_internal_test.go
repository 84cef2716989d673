package receivers

import (
	"net/url"
	"testing"

	amconfig "github.com/prometheus/alertmanager/config"

	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// A rules reload gives each tenant a new Tenant: its templates replace the
// ones built for the last, instead of every reload's being kept for ever.
func TestTemplatesOfAReloadedTenantReplaceTheOld(t *testing.T) {
	b := NewBuilder(&url.URL{Scheme: "http", Host: "klaxon.example"})
	var last *ruleset.Tenant
	for range 100 {
		last = &ruleset.Tenant{Name: "team-a", Config: &amconfig.Config{}}
		if _, err := b.Template(last); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(b.tmpls); n != 1 {
		t.Fatalf("templates kept for %d tenants after 100 reloads of one, want 1", n)
	}
	if b.tmpls["team-a"].t != last {
		t.Fatal("the templates kept are not the last reload's")
	}
}
