package amapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/engine"
	"github.com/klaxon-sh/klaxon/services/engine/silence"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

const rules = `
receivers:
  - name: default
    webhook_configs: [{url: "http://127.0.0.1:1/"}]
route:
  receiver: default
  group_by: [alertname]
  group_wait: 1s
inhibit_rules:
  - source_matchers: [severity=critical]
    target_matchers: [severity=warning]
    equal: [alertname]
`

func amtool(t *testing.T, url string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("amtool")
	if err != nil {
		t.Skip("amtool not installed")
	}
	cmd := exec.Command(bin, append([]string{"--alertmanager.url=" + url}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("amtool %v: %v\n%s%s", args, err, out, stderr.String())
	}
	return string(out)
}

// amtool, unchanged, against Klaxon: silence add/query/expire and alert
// query; the silence it adds suppresses the engine's notification.
func TestAmtool(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := bustest.New(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "am.yml")
	if err := os.WriteFile(p, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	tn, errs := ruleset.LoadFiles("default", []string{p})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	holder := ruleset.NewStaticHolder(&ruleset.Set{Tenants: map[string]*ruleset.Tenant{"default": tn}})

	// The API process.
	apiSil, err := silence.NewKV(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	api := New(Config{Silences: apiSil, Rules: holder, Groups: func(ctx context.Context, tenant string) ([]*engine.GroupState, error) {
		return engine.ReadGroups(ctx, b, tenant)
	}}, bustest.Logger(t))
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// The engine, with its own view of the silences (another process).
	engSil, err := silence.NewKV(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	if err := engSil.Load(wctx); err != nil {
		t.Fatal(err)
	}
	store, err := engine.NewKVStore(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	d := engine.NewDispatcher(engine.DispatcherConfig{Rules: holder.Tenant, Store: store, Silences: engSil})
	now := time.Now()
	for _, ls := range []map[string]string{
		{"alertname": "Foo", "instance": "a"},
		{"alertname": "Bar", "severity": "critical"},
		{"alertname": "Bar", "severity": "warning"},
	} {
		a := &klaxonv1.Alert{Labels: ls, StartsAt: timestamppb.New(now), EndsAt: timestamppb.New(now.Add(time.Hour))}
		if err := d.Receive(ctx, "default", a, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	out := amtool(t, srv.URL, "silence", "add", "alertname=Foo", "--comment=maintenance", "--author=test", "--duration=1h")
	id := strings.TrimSpace(out)
	if len(id) != 36 {
		t.Fatalf("silence add printed %q, want a silence id", out)
	}
	if q := amtool(t, srv.URL, "silence", "query", "-q"); strings.TrimSpace(q) != id {
		t.Fatalf("silence query -q = %q, want %q", q, id)
	}
	if q := amtool(t, srv.URL, "silence", "query", "alertname=Foo"); !strings.Contains(q, id) || !strings.Contains(q, "maintenance") {
		t.Fatalf("silence query alertname=Foo:\n%s", q)
	}
	if q := amtool(t, srv.URL, "silence", "query", "-q", "alertname=Other"); strings.TrimSpace(q) != "" {
		t.Fatalf("filter must exclude the silence: %q", q)
	}

	// Default alert query hides silenced and inhibited alerts.
	q := amtool(t, srv.URL, "alert", "query", "-o", "json")
	var got []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State       string   `json:"state"`
			SilencedBy  []string `json:"silencedBy"`
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(q), &got); err != nil {
		t.Fatalf("alert query json: %v\n%s", err, q)
	}
	if len(got) != 1 || got[0].Labels["severity"] != "critical" {
		t.Fatalf("alert query = %s, want only the critical Bar", q)
	}
	all := amtool(t, srv.URL, "alert", "query", "-a", "-s", "-i", "-o", "json")
	if err := json.Unmarshal([]byte(all), &got); err != nil || len(got) != 3 {
		t.Fatalf("alert query -s -i = %s (%v), want all 3", all, err)
	}
	for _, a := range got {
		switch {
		case a.Labels["alertname"] == "Foo" && (a.Status.State != "suppressed" || len(a.Status.SilencedBy) != 1 || a.Status.SilencedBy[0] != id):
			t.Errorf("Foo must be silenced by %s: %+v", id, a.Status)
		case a.Labels["severity"] == "warning" && len(a.Status.InhibitedBy) != 1:
			t.Errorf("warning Bar must be inhibited: %+v", a.Status)
		}
	}
	if q := amtool(t, srv.URL, "alert", "query", "alertname=Foo", "-s", "-o", "json"); strings.Count(q, `"fingerprint"`) != 1 {
		t.Fatalf("alert query with a filter: %s", q)
	}
	if g := amtool(t, srv.URL, "alert", "query", "-o", "extended"); !strings.Contains(g, "Bar") {
		t.Fatalf("extended alert query: %s", g)
	}

	// The engine sees the silence amtool added and does not notify Foo.
	deadline := time.Now().Add(10 * time.Second)
	for len(engSil.Mutes("default", labelSetOf(map[string]string{"alertname": "Foo", "instance": "a"}))) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("engine never saw the silence")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ns, err := d.Tick(ctx, now.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 || ns[0].GroupLabels["alertname"] != "Bar" || len(ns[0].Alerts) != 1 {
		t.Fatalf("want one notification for Bar (critical only), got %v", ns)
	}

	amtool(t, srv.URL, "silence", "expire", id)
	if q := amtool(t, srv.URL, "silence", "query", "-q"); strings.TrimSpace(q) != "" {
		t.Fatalf("after expire, no active silence: %q", q)
	}
	if q := amtool(t, srv.URL, "silence", "query", "--expired", "-q"); strings.TrimSpace(q) != id {
		t.Fatalf("expired silence is kept: %q", q)
	}
	resp, err := http.Get(srv.URL + "/api/v2/status")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status: %v %v", resp, err)
	}
	_ = resp.Body.Close()
}

// A silence id of kilobytes (a caller's input) is answered 404 for get,
// expire and update, and never reaches NATS: in the KV key of a read it
// made the server close the connection (its 4 KiB control line), for good,
// and the process's engine, consumers and silences with it.
func TestLongSilenceIDIsNotFoundAndKeepsTheConnection(t *testing.T) {
	ctx := context.Background()
	b := bustest.New(t)
	sil, err := silence.NewKV(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	api := New(Config{Silences: sil, Rules: ruleset.NewStaticHolder(&ruleset.Set{Tenants: map[string]*ruleset.Tenant{}}),
		Groups: func(context.Context, string) ([]*engine.GroupState, error) { return nil, nil }}, bustest.Logger(t))
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	long := strings.Repeat("%", 2000) // Token triples it: 6,000 bytes
	do := func(method, path, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	end := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	body := func(id string) string {
		return `{"id":"` + id + `","matchers":[{"name":"alertname","value":"A","isRegex":false}],"createdBy":"t","comment":"c","endsAt":"` + end + `"}`
	}
	if code := do("GET", "/api/v2/silence/"+strings.Repeat("%25", 2000), ""); code != http.StatusNotFound {
		t.Fatalf("GET with a long id: %d, want 404", code)
	}
	if code := do("DELETE", "/api/v2/silence/"+strings.Repeat("%25", 2000), ""); code != http.StatusNotFound {
		t.Fatalf("DELETE with a long id: %d, want 404", code)
	}
	if code := do("POST", "/api/v2/silences", body(long)); code != http.StatusNotFound {
		t.Fatalf("POST with a long id: %d, want 404", code)
	}
	if err := b.Alive(); err != nil {
		t.Fatalf("after long ids: %v", err)
	}
	if code := do("POST", "/api/v2/silences", body("")); code != http.StatusOK {
		t.Fatalf("a new silence after the long ids: %d, want 200", code)
	}
}
