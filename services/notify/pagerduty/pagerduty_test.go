package pagerduty

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	amcommoncfg "github.com/prometheus/alertmanager/config/common"
	ampd "github.com/prometheus/alertmanager/notify/pagerduty"
	"github.com/prometheus/common/model"

	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/notify"
	"github.com/klaxon-sh/klaxon/services/notify/notifytest"
)

const routingKey = "R0123456789abcdef0123456789abcde" // 32 chars, as PagerDuty issues them

// fakePD enforces the Events API v2 contract: it answers 400 to anything a
// real PagerDuty rejects, 429 while a burst budget is exhausted, 202 otherwise.
type fakePD struct {
	mu       sync.Mutex
	events   []map[string]any
	limit429 int // answer 429 to this many requests first
	status   int // forced status, if set
}

func (f *fakePD) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status != 0 {
		w.WriteHeader(f.status)
		return
	}
	if f.limit429 > 0 {
		f.limit429--
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"status":"throttle event","message":"Requests for this service are arriving too quickly."}`)
		return
	}
	bad := func(msg string) {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "invalid event", "message": "Event object is invalid", "errors": []string{msg}})
	}
	if r.Header.Get("Content-Type") != "application/json" {
		bad("content type")
		return
	}
	var ev map[string]any
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		bad("bad json")
		return
	}
	if k, _ := ev["routing_key"].(string); len(k) != 32 {
		bad("'routing_key' must be 32 characters")
		return
	}
	action, _ := ev["event_action"].(string)
	switch action {
	case "trigger", "acknowledge", "resolve":
	default:
		bad("'event_action' is invalid")
		return
	}
	if dk, ok := ev["dedup_key"].(string); ok && len(dk) > 255 {
		bad("'dedup_key' too long")
		return
	}
	if action != "trigger" && ev["dedup_key"] == nil {
		bad("'dedup_key' is required for " + action)
		return
	}
	if action == "trigger" {
		p, _ := ev["payload"].(map[string]any)
		summary, _ := p["summary"].(string)
		source, _ := p["source"].(string)
		switch sev, _ := p["severity"].(string); {
		case summary == "" || utf8.RuneCountInString(summary) > 1024:
			bad("'payload.summary' missing or longer than 1024")
			return
		case source == "":
			bad("'payload.source' is required")
			return
		case sev != "critical" && sev != "error" && sev != "warning" && sev != "info":
			bad("'payload.severity' is invalid")
			return
		}
	}
	f.events = append(f.events, ev)
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"success","message":"Event processed","dedup_key":"x"}`)
}

func newNotifier(t *testing.T, srv *httptest.Server, mod func(*ampd.PagerdutyConfig)) *Notifier {
	t.Helper()
	conf := ampd.DefaultPagerdutyConfig
	conf.RoutingKey = routingKey
	u := amcommoncfg.MustParseURL(srv.URL + "/v2/enqueue")
	conf.URL = u
	if mod != nil {
		mod(&conf)
	}
	n, err := New(&conf, notifytest.Template(t), bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTriggerThenResolveShareDedupKey(t *testing.T) {
	f := &fakePD{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	n := newNotifier(t, srv, nil)
	ctx := context.Background()
	for _, resolved := range []bool{false, true} {
		if retry, err := n.Notify(ctx, notifytest.Notification(resolved)); err != nil {
			t.Fatalf("resolved=%v: retry=%v err=%v", resolved, retry, err)
		}
	}
	if len(f.events) != 2 {
		t.Fatalf("got %d events", len(f.events))
	}
	if f.events[0]["event_action"] != "trigger" || f.events[1]["event_action"] != "resolve" {
		t.Fatalf("actions: %v, %v", f.events[0]["event_action"], f.events[1]["event_action"])
	}
	if f.events[0]["dedup_key"] != f.events[1]["dedup_key"] || f.events[0]["dedup_key"] != DedupKey(notifytest.Notification(false).GroupKey) {
		t.Fatalf("dedup keys differ: %v %v", f.events[0]["dedup_key"], f.events[1]["dedup_key"])
	}
	if sev := f.events[0]["payload"].(map[string]any)["severity"]; sev != "critical" {
		t.Fatalf("severity from label: %v", sev)
	}
}

func TestGoldenPayloads(t *testing.T) {
	f := &fakePD{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	n := newNotifier(t, srv, func(c *ampd.PagerdutyConfig) {
		c.Component = "{{ .CommonLabels.job }}"
		c.Group = "prod"
		c.Class = "latency"
		c.Links = []ampd.PagerdutyLink{{Href: `{{ (index .Alerts 0).Annotations.runbook_url }}`, Text: "Runbook"}}
		c.Images = []ampd.PagerdutyImage{{Src: "https://grafana.example/render/api.png", Alt: "latency"}}
	})
	for _, tc := range []struct {
		name     string
		resolved bool
	}{{"trigger", false}, {"resolve", true}} {
		ev, err := n.event(notifytest.Notification(tc.resolved))
		if err != nil {
			t.Fatal(err)
		}
		ev.RoutingKey = "<routing key>"
		b, _ := json.MarshalIndent(ev, "", "  ")
		notifytest.Golden(t, "pagerduty_"+tc.name, append(b, '\n'))
	}
}

func TestSummaryTruncatedAndDedupKeyBounded(t *testing.T) {
	f := &fakePD{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	n := newNotifier(t, srv, func(c *ampd.PagerdutyConfig) { c.Description = strings.Repeat("é", 3000) })
	no := notifytest.Notification(false)
	no.GroupKey = strings.Repeat("{}/{x=\"y\"}", 100)
	if _, err := n.Notify(context.Background(), no); err != nil {
		t.Fatalf("contract violated: %v", err)
	}
	s := f.events[0]["payload"].(map[string]any)["summary"].(string)
	if utf8.RuneCountInString(s) != 1024 || !strings.HasSuffix(s, "…") {
		t.Fatalf("summary has %d runes", utf8.RuneCountInString(s))
	}
}

func TestStatusRetryMatrix(t *testing.T) {
	for _, tc := range []struct {
		status int
		retry  bool
		ok     bool
		reason notify.Reason
	}{
		{202, false, true, ""},
		{400, false, false, notify.ReasonClientError},
		{403, false, false, notify.ReasonClientError},
		{404, false, false, notify.ReasonClientError},
		{408, true, false, notify.ReasonTimeout},
		{429, true, false, notify.ReasonRateLimited},
		{500, true, false, notify.ReasonServerError},
		{502, true, false, notify.ReasonServerError},
		{503, true, false, notify.ReasonServerError},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			f := &fakePD{status: tc.status}
			srv := httptest.NewServer(f)
			defer srv.Close()
			retry, err := newNotifier(t, srv, nil).Notify(context.Background(), notifytest.Notification(false))
			if retry != tc.retry || (err == nil) != tc.ok {
				t.Fatalf("status %d: retry=%v err=%v", tc.status, retry, err)
			}
			if err != nil && notify.ReasonOf(err) != tc.reason {
				t.Fatalf("reason %s, want %s", notify.ReasonOf(err), tc.reason)
			}
		})
	}
}

func TestBadEventIs400NotRetried(t *testing.T) {
	f := &fakePD{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	n := newNotifier(t, srv, func(c *ampd.PagerdutyConfig) { c.RoutingKey = "short" })
	retry, err := n.Notify(context.Background(), notifytest.Notification(false))
	if err == nil || retry {
		t.Fatalf("want permanent failure, got retry=%v err=%v", retry, err)
	}
	if !bytes.Contains([]byte(err.Error()), []byte("routing_key")) {
		t.Fatalf("error should carry PagerDuty's message: %v", err)
	}
}

func TestRateLimitBurstHonoursRetryAfter(t *testing.T) {
	f := &fakePD{limit429: 2}
	srv := httptest.NewServer(f)
	defer srv.Close()
	n := newNotifier(t, srv, nil)
	for i := 0; i < 2; i++ {
		retry, err := n.Notify(context.Background(), notifytest.Notification(false))
		if !retry || notify.RetryAfterOf(err).Seconds() != 2 {
			t.Fatalf("try %d: retry=%v retry-after=%v err=%v", i, retry, notify.RetryAfterOf(err), err)
		}
	}
	if _, err := n.Notify(context.Background(), notifytest.Notification(false)); err != nil {
		t.Fatalf("after the burst: %v", err)
	}
}

func TestMapSeverity(t *testing.T) {
	for in, want := range map[string]string{"critical": "critical", "P1": "critical", "warning": "warning", "high": "error", "info": "info", "bogus": ""} {
		if got, _ := MapSeverity(in); got != want {
			t.Errorf("MapSeverity(%q) = %q, want %q", in, got, want)
		}
	}
	_ = model.LabelSet{}
}
