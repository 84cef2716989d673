package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// grafanaDashboard is the part of Grafana's dashboard model (schemaVersion
// 39) the file uses; decoding disallows anything else at the top level of a
// panel or target, so a misspelt key fails.
type grafanaDashboard struct {
	Title         string          `json:"title"`
	UID           string          `json:"uid"`
	SchemaVersion int             `json:"schemaVersion"`
	Version       int             `json:"version"`
	Editable      bool            `json:"editable"`
	Tags          []string        `json:"tags"`
	Time          json.RawMessage `json:"time"`
	Refresh       string          `json:"refresh"`
	Timezone      string          `json:"timezone"`
	Templating    struct {
		List []struct {
			Name    string          `json:"name"`
			Type    string          `json:"type"`
			Query   string          `json:"query"`
			Label   string          `json:"label"`
			Current json.RawMessage `json:"current"`
		} `json:"list"`
	} `json:"templating"`
	Annotations json.RawMessage `json:"annotations"`
	Panels      []grafanaPanel  `json:"panels"`
}

type grafanaPanel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	Description string                   `json:"description"`
	GridPos     struct{ X, Y, W, H int } `json:"gridPos"`
	Datasource  struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	FieldConfig json.RawMessage `json:"fieldConfig"`
	Options     json.RawMessage `json:"options"`
	Targets     []struct {
		RefID        string `json:"refId"`
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
		Instant      bool   `json:"instant"`
		Datasource   struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

// TestDashboard: klaxon-dashboard.json is a Grafana dashboard whose panels
// are laid out on the 24-column grid, query the dashboard's data source
// variable with valid PromQL, cover what operators look at, and select only
// metrics (and labels) Klaxon really exports.
var dashboardFile = filepath.Join(root, "grafana", "klaxon-dashboard.json")

func TestDashboard(t *testing.T) {
	f, err := os.Open(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var d grafanaDashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("not the Grafana dashboard model: %v", err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 36 || len(d.Panels) == 0 {
		t.Fatalf("dashboard needs title, uid, schemaVersion >= 36 and panels")
	}
	var dsVar string
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Query == "prometheus" {
			dsVar = "${" + v.Name + "}"
		}
	}
	if dsVar == "" {
		t.Fatal("no Prometheus data source variable: the dashboard would be bound to one Grafana's data source uid")
	}
	ids := map[int]bool{}
	var qs []query
	for _, p := range d.Panels {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID == 0 || ids[p.ID] || p.Title == "" {
			t.Errorf("%s: want a unique id and a title", where)
		}
		ids[p.ID] = true
		if !slices.Contains([]string{"timeseries", "stat", "gauge", "bargauge", "table", "heatmap"}, p.Type) {
			t.Errorf("%s: panel type %q", where, p.Type)
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: gridPos %+v off the 24-column grid", where, p.GridPos)
		}
		if p.Datasource.Type != "prometheus" || p.Datasource.UID != dsVar {
			t.Errorf("%s: data source %+v, want prometheus %s", where, p.Datasource, dsVar)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no query", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Datasource.UID != "" && tg.Datasource.UID != dsVar {
				t.Errorf("%s: target %s queries data source %q", where, tg.RefID, tg.Datasource.UID)
			}
			if tg.RefID == "" || refs[tg.RefID] || tg.Expr == "" {
				t.Errorf("%s: target %q: want a unique refId and an expr", where, tg.RefID)
			}
			refs[tg.RefID] = true
			qs = append(qs, query{where: where, expr: tg.Expr})
		}
	}
	names := klaxonMetrics(t, qs)
	for _, m := range []string{
		"klaxon_receiver_requests_total", "klaxon_receiver_request_duration_seconds",
		"klaxon_notifications_total", "klaxon_notifications_failed_total", "klaxon_dead_letters",
		"klaxon_policy_derived_alerts_total", "klaxon_heartbeat_derived_alerts_total", "klaxon_heartbeats_received_total",
		"klaxon_slo_error_budget_remaining_ratio", "klaxon_slo_burn_rate",
	} {
		if !slices.Contains(names, m) {
			t.Errorf("no panel shows %s", m)
		}
	}
	checkQueries(t, qs)
}
