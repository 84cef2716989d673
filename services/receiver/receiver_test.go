package receiver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	amalert "github.com/prometheus/alertmanager/alert"
	amcommoncfg "github.com/prometheus/alertmanager/config/common"
	amnotify "github.com/prometheus/alertmanager/notify"
	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	amtemplate "github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/receiver"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

var testNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

type harness struct {
	t   *testing.T
	bus *bus.Bus
	srv *httptest.Server
}

func newHarness(t *testing.T, cfg receiver.Config) *harness {
	t.Helper()
	b := bustest.New(t)
	return newHarnessWith(t, cfg, b, b)
}

func newHarnessWith(t *testing.T, cfg receiver.Config, b *bus.Bus, pub receiver.Publisher) *harness {
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	rc := receiver.New(cfg, pub, bustest.Logger(t), prometheus.NewRegistry())
	mux := http.NewServeMux()
	rc.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &harness{t: t, bus: b, srv: srv}
}

type response struct {
	code   int
	body   map[string]any
	header http.Header
}

func (h *harness) post(path, body string, headers ...string) response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{code: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		h.t.Fatalf("response is not JSON: %q", raw)
	}
	return r
}

// stored reads every envelope in the INGEST stream.
func (h *harness) stored() []*klaxonv1.Envelope {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.bus.JS.Stream(ctx, bus.StreamIngest)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*klaxonv1.Envelope
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			h.t.Fatal(err)
		}
		envs, err := bus.DecodeEnvelopes(m.Header, m.Data)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, env := range envs {
			if want := bus.IngestSubject(env.Tenant, env.Source); m.Subject != want {
				h.t.Errorf("envelope on %s, want %s", m.Subject, want)
			}
		}
		out = append(out, envs...)
	}
	return out
}

func TestAlertmanagerWebhook(t *testing.T) {
	h := newHarness(t, receiver.Config{})
	body := `{"version":"4","groupKey":"{}:{alertname=\"HighLatency\"}","status":"firing","receiver":"klaxon","newField":1,
	  "alerts":[
	    {"status":"firing","labels":{"alertname":"HighLatency","instance":"a"},"annotations":{"summary":"slow"},
	     "startsAt":"2026-11-24T11:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom/graph","fingerprint":"x"},
	    {"status":"resolved","labels":{"alertname":"HighLatency","instance":"b"},
	     "startsAt":"2026-11-24T10:00:00Z","endsAt":"2026-11-24T11:30:00Z"}]}`
	r := h.post("/api/v1/alertmanager", body, "X-Scope-OrgID", "team-a")
	if r.code != 200 || r.body["stored"] != 2.0 {
		t.Fatalf("got %d %v", r.code, r.body)
	}
	envs := h.stored()
	if len(envs) != 2 {
		t.Fatalf("stored %d envelopes, want 2", len(envs))
	}
	a, b := envs[0].GetAlert(), envs[1].GetAlert()
	if envs[0].Tenant != "team-a" || envs[0].Source != receiver.SourceAlertmanager {
		t.Errorf("tenant/source = %s/%s", envs[0].Tenant, envs[0].Source)
	}
	if a.Status != klaxonv1.AlertStatus_ALERT_STATUS_FIRING || a.EndsAt != nil || a.Annotations["summary"] != "slow" || a.GeneratorUrl != "http://prom/graph" {
		t.Errorf("first alert: %+v", a)
	}
	// Alertmanager's fingerprint of the label set, not the sender's field.
	if a.Fingerprint != receiver.Fingerprint(map[string]string{"alertname": "HighLatency", "instance": "a"}) || a.Fingerprint == "x" {
		t.Errorf("fingerprint %q", a.Fingerprint)
	}
	if b.Status != klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED || !b.EndsAt.AsTime().Equal(time.Date(2026, 11, 24, 11, 30, 0, 0, time.UTC)) {
		t.Errorf("second alert: %+v", b)
	}
}

func TestAlertsV2DerivesStatusFromEndsAt(t *testing.T) {
	h := newHarness(t, receiver.Config{})
	body := `[{"labels":{"alertname":"A"}},
	  {"labels":{"alertname":"B"},"startsAt":"2026-11-24T11:00:00Z","endsAt":"2026-11-24T11:59:00Z"},
	  {"labels":{"alertname":"C"},"startsAt":"2026-11-24T11:00:00Z","endsAt":"2026-11-24T12:04:00Z","generatorURL":"http://x"}]`
	r := h.post("/api/v2/alerts", body)
	if r.code != 200 {
		t.Fatalf("got %d %v", r.code, r.body)
	}
	envs := h.stored()
	if len(envs) != 3 {
		t.Fatalf("stored %d", len(envs))
	}
	want := []klaxonv1.AlertStatus{klaxonv1.AlertStatus_ALERT_STATUS_FIRING, klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED, klaxonv1.AlertStatus_ALERT_STATUS_FIRING}
	for i, e := range envs {
		if e.Tenant != "default" || e.Source != receiver.SourceAlertsV2 {
			t.Errorf("%d: tenant/source %s/%s", i, e.Tenant, e.Source)
		}
		if got := e.GetAlert().Status; got != want[i] {
			t.Errorf("alert %s: status %v, want %v", e.GetAlert().Labels["alertname"], got, want[i])
		}
	}
	if !envs[0].GetAlert().StartsAt.AsTime().Equal(testNow) {
		t.Errorf("missing startsAt should be now, got %v", envs[0].GetAlert().StartsAt.AsTime())
	}
}

func TestRetriedPostIsStoredOnce(t *testing.T) {
	h := newHarness(t, receiver.Config{})
	body := `[{"labels":{"alertname":"A"},"startsAt":"2026-11-24T11:00:00Z"}]`
	for i := 0; i < 3; i++ {
		r := h.post("/api/v2/alerts", body)
		if r.code != 200 {
			t.Fatalf("attempt %d: %d", i, r.code)
		}
		if i > 0 && r.body["duplicates"] != 1.0 {
			t.Errorf("attempt %d: duplicates = %v, want 1", i, r.body["duplicates"])
		}
	}
	if n := len(h.stored()); n != 1 {
		t.Fatalf("stored %d times, want once", n)
	}
	// The same alert for another tenant is a different item.
	h.post("/api/v2/alerts", body, "X-Scope-OrgID", "other")
	if n := len(h.stored()); n != 2 {
		t.Fatalf("stored %d, want 2", n)
	}
}

func TestBadInputGets400NamingTheField(t *testing.T) {
	h := newHarness(t, receiver.Config{})
	cases := []struct {
		path, body, want string
	}{
		{"/api/v1/alertmanager", `{"version":"4","alerts":[`, "malformed JSON"},
		{"/api/v1/alertmanager", `{"version":"4"}`, `"alerts"`},
		{"/api/v1/alertmanager", `{"version":"4","alerts":[{"labels":{}}]}`, `alerts[0].labels`},
		{"/api/v1/alertmanager", `{"version":"4","alerts":[{"status":"maybe","labels":{"a":"b"}}]}`, `alerts[0].status`},
		{"/api/v1/alertmanager", `{"version":"3","alerts":[]}`, `"version"`},
		{"/api/v1/alertmanager", ``, "empty body"},
		{"/api/v2/alerts", `{"labels":{"a":"b"}}`, "body: expected an array, got JSON object"},
		{"/api/v1/alertmanager", `[1,2]`, "body: expected an object, got JSON array"},
		{"/api/v2/alerts", `[{"labels":{"a":""}}]`, `[0].labels`},
		{"/api/v2/alerts", `[{"labels":{"a":1}}]`, `labels`},
		{"/api/v2/alerts", `[{"labels":{"":"x"}}]`, `invalid label name`},
		{"/api/v2/alerts", `[{"labels":{"a":"b"},"startsAt":"yesterday"}]`, `timestamp`},
		{"/api/v2/alerts", `[{"labels":{"a":"b"},"startsAt":"2026-11-24T11:00:00Z","endsAt":"2026-11-24T10:00:00Z"}]`, `endsAt`},
		{"/api/v2/alerts", `[{"labels":{"a":"b"},"startsAt":"0000-06-01T00:00:00Z"}]`, `0000-06-01T00:00:00Z is out of range`},
		{"/api/v1/alertmanager", `{"version":"4","alerts":[{"labels":{"a":"b"},"endsAt":"9999-12-31T23:00:00-05:00"}]}`, `alerts[0].endsAt`},
		{"/api/v1/eventbridge", `{"detail-type":"x","source":"aws.ec2"}`, `"id"`},
		{"/api/v1/eventbridge", `[{"id":"1","source":"aws.ec2"}]`, `[0].detail-type`},
		{"/api/v1/eventbridge", `[]`, "empty"},
		{"/api/v1/k8s-events", `{"reason":"BackOff","metadata":{"uid":"u"}}`, "involvedObject"},
		{"/api/v1/k8s-events", `{"involvedObject":{"kind":"Pod","name":"p"},"metadata":{"uid":"u"}}`, `"reason"`},
		{"/api/v1/heartbeat/cron", `not json`, "malformed JSON"},
		{"/api/v1/heartbeat/bad%20name", ``, "heartbeat name"},
		{"/api/v1/slo/checkout/events", `{"good":5}`, `"total"`},
		{"/api/v1/slo/checkout/events", `{"good":5,"total":4}`, `"good"`},
		{"/api/v1/slo/checkout/events", `{"good":-1,"total":4}`, `"good"`},
		{"/api/v1/sns", `{"Type":"Notification"}`, `"MessageId"`},
	}
	for _, c := range cases {
		t.Run(c.path+" "+c.body, func(t *testing.T) {
			r := h.post(c.path, c.body)
			if r.code != http.StatusBadRequest {
				t.Fatalf("code %d, want 400 (%v)", r.code, r.body)
			}
			if msg, _ := r.body["error"].(string); !strings.Contains(msg, c.want) {
				t.Fatalf("error %q does not mention %q", msg, c.want)
			} else if strings.Contains(msg, "receiver.") || strings.Contains(msg, "map[") {
				t.Fatalf("error %q names Go types", msg)
			}
		})
	}
	if n := len(h.stored()); n != 0 {
		t.Fatalf("bad input stored %d envelopes", n)
	}
}

// As Alertmanager's API: labels with an empty value are dropped (the
// alert is the one without them, same fingerprint), and the valid alerts of
// a batch are stored when others are not, with 400 naming those. Klaxon kept
// an empty label (another alert than Alertmanager's), and refused the whole
// batch, whose valid alerts Prometheus then never sent again.
func TestAlertsV2AsAlertmanagerTakesThem(t *testing.T) {
	h := newHarness(t, receiver.Config{})
	r := h.post("/api/v2/alerts", `[{"labels":{"alertname":"A","env":""}},{"annotations":{"x":"y"}},{"labels":{"alertname":""}}]`)
	if r.code != http.StatusBadRequest || r.body["stored"] != float64(1) {
		t.Fatalf("partly invalid batch: %d %v, want 400 with the valid alert stored", r.code, r.body)
	}
	if msg, _ := r.body["error"].(string); !strings.Contains(msg, "2 of 3 alerts invalid") || !strings.Contains(msg, "[1].labels") || !strings.Contains(msg, "[2].labels") {
		t.Fatalf("error %q does not name the invalid alerts", msg)
	}
	stored := h.stored()
	if len(stored) != 1 {
		t.Fatalf("stored %d, want the valid alert", len(stored))
	}
	a := stored[0].GetAlert()
	want := model.LabelSet{"alertname": "A"}.Fingerprint().String()
	if _, ok := a.GetLabels()["env"]; ok || a.GetFingerprint() != want {
		t.Fatalf("stored labels %v fingerprint %s, want {alertname=A} and %s as Alertmanager", a.GetLabels(), a.GetFingerprint(), want)
	}
}

func TestOversizeBodyGets413(t *testing.T) {
	h := newHarness(t, receiver.Config{MaxBodyBytes: 1024})
	big := `[{"labels":{"alertname":"` + strings.Repeat("x", 2048) + `"}}]`
	if r := h.post("/api/v2/alerts", big); r.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("with Content-Length: %d", r.code)
	}
	// Chunked (no Content-Length): the limit applies while reading.
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/api/v2/alerts", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked: %d", resp.StatusCode)
	}
}

// Behind a NATS server whose max_payload is smaller than the body limit
// (an external server's default 1 MiB against the receiver's 4 MiB), an
// alert larger than a message is refused with 413, not 503: a retry would
// fail the same way for ever. The alerts of the request that fit are
// stored (they go in messages of their own).
func TestItemLargerThanMaxPayloadGets413(t *testing.T) {
	b := bustest.NewWithMaxPayload(t, 1<<20)
	h := newHarnessWith(t, receiver.Config{}, b, b)
	big := `[{"labels":{"alertname":"Small"}},{"labels":{"alertname":"Big"},"annotations":{"description":"` + strings.Repeat("x", 2<<20) + `"}}]`
	r := h.post("/api/v2/alerts", big)
	if r.code != http.StatusRequestEntityTooLarge || r.header.Get("Retry-After") != "" || !strings.Contains(fmt.Sprint(r.body), "max_payload") {
		t.Fatalf("alert larger than max_payload: %d %v (Retry-After %q), want 413 naming max_payload and no Retry-After", r.code, r.body, r.header.Get("Retry-After"))
	}
	var names []string
	for _, e := range h.stored() {
		names = append(names, e.GetAlert().GetLabels()["alertname"])
	}
	if len(names) != 1 || names[0] != "Small" {
		t.Fatalf("stored %v, want only the alert that fits", names)
	}
}

type failingPublisher struct{}

func (failingPublisher) Publish(context.Context, ...bus.Message) ([]bus.Result, error) {
	return nil, fmt.Errorf("%w: no quorum", bus.ErrNotStored)
}

func TestCannotStoreGets503WithRetryAfter(t *testing.T) {
	h := newHarnessWith(t, receiver.Config{}, nil, failingPublisher{})
	for _, p := range []string{"/api/v2/alerts", "/api/v1/alertmanager"} {
		body := `[{"labels":{"alertname":"A"}}]`
		if p == "/api/v1/alertmanager" {
			body = `{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"A"}}]}`
		}
		r := h.post(p, body)
		if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("%s: code %d, Retry-After %q", p, r.code, r.header.Get("Retry-After"))
		}
	}
}

func TestStreamGoneGets503(t *testing.T) {
	h := newHarness(t, receiver.Config{})
	if err := h.bus.JS.DeleteStream(context.Background(), bus.StreamIngest); err != nil {
		t.Fatal(err)
	}
	if r := h.post("/api/v2/alerts", `[{"labels":{"alertname":"A"}}]`); r.code != http.StatusServiceUnavailable {
		t.Fatalf("code %d", r.code)
	}
}

func TestTenantHeaderAndAuth(t *testing.T) {
	h := newHarness(t, receiver.Config{})
	if r := h.post("/api/v2/alerts", `[{"labels":{"a":"b"}}]`, "X-Scope-OrgID", "bad tenant!"); r.code != 400 {
		t.Fatalf("invalid tenant: %d", r.code)
	}
	tenants := &ruleset.Tenants{
		Tenants:     map[string]ruleset.TenantAuth{"team-a": {Tokens: []string{ruleset.HashToken("secret-a")}}, "team-b": {Tokens: []string{ruleset.HashToken("secret-b")}}},
		AdminTokens: []string{ruleset.HashToken("root")},
	}
	ha := newHarness(t, receiver.Config{Auth: tenants})
	body := `[{"labels":{"a":"b"}}]`
	cases := []struct {
		name, token, tenant string
		code                int
		stored              string
	}{
		{"no token", "", "team-a", 401, ""},
		{"unknown token", "nope", "team-a", 401, ""},
		{"other tenant's token", "secret-b", "team-a", 403, ""},
		{"own token", "secret-a", "team-a", 200, "team-a"},
		{"token implies tenant", "secret-b", "", 200, "team-b"},
		{"admin for any tenant", "root", "team-c", 200, "team-c"},
		{"basic auth tenant:token (SNS subscription URL)", "basic:team-a:secret-a", "", 200, "team-a"},
		{"basic auth with another tenant's token", "basic:team-a:secret-b", "", 403, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if up, ok := strings.CutPrefix(c.token, "basic:"); ok {
				hdr = append(hdr, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(up)))
			} else if c.token != "" {
				hdr = append(hdr, "Authorization", "Bearer "+c.token)
			}
			if c.tenant != "" {
				hdr = append(hdr, "X-Scope-OrgID", c.tenant)
			}
			before := len(ha.stored())
			r := ha.post("/api/v2/alerts", fmt.Sprintf(`[{"labels":{"a":%q}}]`, c.name), hdr...)
			if r.code != c.code {
				t.Fatalf("code %d, want %d (%v)", r.code, c.code, r.body)
			}
			envs := ha.stored()
			if c.stored == "" {
				if len(envs) != before {
					t.Fatal("rejected request stored something")
				}
				return
			}
			if got := envs[len(envs)-1].Tenant; got != c.stored {
				t.Fatalf("stored for %q, want %q", got, c.stored)
			}
		})
	}
	_ = body
}

func TestEventBridgeCloudTrail(t *testing.T) {
	h := newHarness(t, receiver.Config{})
	ev := `{"version":"0","id":"6f87d04b-9f74-4f04-a780-7acf4b0a9b38","detail-type":"AWS API Call via CloudTrail","source":"aws.eks",
	 "account":"123456789012","time":"2026-11-24T11:58:00Z","region":"eu-west-1","resources":[],
	 "detail":{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::123456789012:assumed-role/admin/alice"},
	   "eventTime":"2026-11-24T11:58:00Z","eventSource":"eks.amazonaws.com","eventName":"DeleteCluster","awsRegion":"eu-west-1",
	   "sourceIPAddress":"198.51.100.7","eventID":"e1b2c3d4-0000-1111-2222-333344445555","readOnly":false,"eventType":"AwsApiCall"}}`
	for _, body := range []string{ev, "[" + ev + "," + strings.Replace(ev, "e1b2c3d4", "f1b2c3d4", 1) + "]"} {
		if r := h.post("/api/v1/eventbridge", body); r.code != 200 {
			t.Fatalf("code %d %v", r.code, r.body)
		}
	}
	envs := h.stored()
	// The single event and the first array element are the same CloudTrail
	// event: stored once.
	if len(envs) != 2 {
		t.Fatalf("stored %d, want 2", len(envs))
	}
	e := envs[0].GetEvent()
	want := map[string]string{"eventName": "DeleteCluster", "eventSource": "eks.amazonaws.com", "userIdentity_type": "AssumedRole",
		"detail_type": "AWS API Call via CloudTrail", "account": "123456789012", "readOnly": "false"}
	for k, v := range want {
		if e.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, e.Labels[k], v)
		}
	}
	if e.Kind != "cloudtrail" || len(e.Raw) == 0 || !e.Time.AsTime().Equal(time.Date(2026, 11, 24, 11, 58, 0, 0, time.UTC)) {
		t.Errorf("event: kind %s time %v raw %d", e.Kind, e.Time.AsTime(), len(e.Raw))
	}
}

func TestK8sEvents(t *testing.T) {
	h := newHarness(t, receiver.Config{})
	core := `{"kind":"Event","metadata":{"name":"web-1.17","namespace":"shop","uid":"uid-1"},
	  "involvedObject":{"kind":"Pod","namespace":"shop","name":"web-1","fieldPath":"spec.containers{app}"},
	  "reason":"BackOff","message":"Back-off restarting failed container","type":"Warning","count":%d,
	  "lastTimestamp":"2026-11-24T11:59:00Z","source":{"component":"kubelet","host":"node-1"}}`
	posts := []string{
		fmt.Sprintf(core, 1),
		fmt.Sprintf(core, 1), // re-sent: same occurrence
		fmt.Sprintf(`{"type":"MODIFIED","object":`+core+`}`, 2),
		`{"items":[` + fmt.Sprintf(core, 3) + `]}`,
		`{"EventType":"Warning","EventKind":"Pod","EventObject":"web-2","EventReason":"OOMKilled","EventTime":"2026-11-24 11:59:00 +0000 UTC","EventMessage":"oom"}`,
		`{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"uid":"uid-2","namespace":"shop"},"regarding":{"kind":"Node","name":"node-1"},"reason":"NodeNotReady","note":"down","type":"Warning","series":{"count":4}}`,
	}
	for _, p := range posts {
		if r := h.post("/api/v1/k8s-events", p); r.code != 200 {
			t.Fatalf("code %d %v for %s", r.code, r.body, p)
		}
	}
	envs := h.stored()
	if len(envs) != 5 {
		t.Fatalf("stored %d, want 5 (a re-sent event counts once)", len(envs))
	}
	l := envs[0].GetEvent().Labels
	if l["pod"] != "web-1" || l["namespace"] != "shop" || l["reason"] != "BackOff" || l["container"] != "app" || l["count"] != "1" {
		t.Errorf("labels %v", l)
	}
	// The object's kind is object_kind: `kind` is left to the event's own
	// (k8s), which window policies and SLOs match (kind="k8s", as the
	// example BackOff policies do); labelled kind="Pod", no such policy
	// ever matched a real event.
	for i, want := range []string{"Pod", "Pod", "Pod", "Pod", "Node"} {
		el := envs[i].GetEvent().Labels
		if _, ok := el["kind"]; ok || el["object_kind"] != want {
			t.Errorf("event %d: labels %v, want object_kind %s and no kind", i, el, want)
		}
	}
	if got := envs[3].GetEvent().Labels["reason"]; got != "OOMKilled" {
		t.Errorf("kube-eventer body: reason %q", got)
	}
	if got := envs[4].GetEvent().Id; got != "uid-2/4" {
		t.Errorf("events.k8s.io/v1 id %q", got)
	}
}

func TestHeartbeatAndSLOEvents(t *testing.T) {
	h := newHarness(t, receiver.Config{})
	if r := h.post("/api/v1/heartbeat/nightly-backup", ``); r.code != 200 {
		t.Fatalf("empty heartbeat: %d", r.code)
	}
	if r := h.post("/api/v1/slo/checkout-availability/events", `{"good":998,"total":1000,"time":"2026-11-24T11:59:00Z"}`); r.code != 202 {
		t.Fatalf("slo: %d %v", r.code, r.body)
	}
	envs := h.stored()
	if len(envs) != 2 {
		t.Fatalf("stored %d", len(envs))
	}
	hb, slo := envs[0].GetEvent(), envs[1].GetEvent()
	if hb.Kind != "heartbeat" || hb.Name != "nightly-backup" || !hb.Time.AsTime().Equal(testNow) {
		t.Errorf("heartbeat %+v", hb)
	}
	if slo.Kind != "slo" || slo.Name != "checkout-availability" || slo.Good != 998 || slo.Total != 1000 {
		t.Errorf("slo %+v", slo)
	}
	// An explicit id makes a retried count idempotent.
	for i := 0; i < 2; i++ {
		h.post("/api/v1/slo/checkout-availability/events", `{"good":1,"total":1,"id":"batch-7"}`)
	}
	if n := len(h.stored()); n != 3 {
		t.Fatalf("stored %d, want 3", n)
	}
}

// A beat or count for a heartbeat or SLO that the tenant's rules do not
// define, or anything for a tenant without rules, is 404 with the reason,
// and not stored: a cron job with a typo in its URL was told it had
// succeeded, and its beats counted nowhere.
func TestUnknownHeartbeatOrSLOIs404(t *testing.T) {
	h := newHarness(t, receiver.Config{Known: func(tenant, kind, name string) error {
		if tenant == "default" && (kind == "tenant" || kind == "heartbeat" && name == "nightly-backup" || kind == "slo" && name == "checkout") {
			return nil
		}
		return fmt.Errorf("no %s %q", map[string]string{"heartbeat": "heartbeat", "slo": "SLO"}[kind], name)
	}})
	if r := h.post("/api/v1/heartbeat/nightly-backup", ``); r.code != 200 {
		t.Fatalf("known heartbeat: %d %v", r.code, r.body)
	}
	if r := h.post("/api/v1/heartbeat/nightly-bakup", ``); r.code != 404 || !strings.Contains(fmt.Sprint(r.body), `no heartbeat "nightly-bakup"`) {
		t.Fatalf("unknown heartbeat: %d %v, want 404 naming it", r.code, r.body)
	}
	if r := h.post("/api/v1/slo/checkout/events", `{"good":1,"total":1}`); r.code != 202 {
		t.Fatalf("known SLO: %d %v", r.code, r.body)
	}
	if r := h.post("/api/v1/slo/chekout/events", `{"good":1,"total":1}`); r.code != 404 || !strings.Contains(fmt.Sprint(r.body), `no SLO "chekout"`) {
		t.Fatalf("unknown SLO: %d %v, want 404 naming it", r.code, r.body)
	}
	// A tenant without rules (a wrong X-Scope-OrgID) is refused on every
	// endpoint: nothing would route or count what it sends.
	if r := h.post("/api/v2/alerts", `[{"labels":{"alertname":"A"}}]`, "X-Scope-OrgID", "team-zzz"); r.code != 404 {
		t.Fatalf("alert for a tenant without rules: %d %v, want 404", r.code, r.body)
	}
	if n := len(h.stored()); n != 2 {
		t.Fatalf("stored %d, want 2 (the known ones)", n)
	}
}

func TestUnknownFieldsAreIgnored(t *testing.T) {
	h := newHarness(t, receiver.Config{})
	r := h.post("/api/v2/alerts", `[{"labels":{"a":"b"},"futureField":{"x":[1,2]},"status":{"state":"active"}}]`)
	if r.code != 200 {
		t.Fatalf("code %d %v", r.code, r.body)
	}
}

func TestEnvelopeIDStable(t *testing.T) {
	a := receiver.EnvelopeID("t", "s", "x")
	if a != receiver.EnvelopeID("t", "s", "x") || a == receiver.EnvelopeID("t2", "s", "x") || a == receiver.EnvelopeID("t", "s2", "x") {
		t.Fatal("EnvelopeID must depend on tenant, source and identity only")
	}
	_ = bytes.MinRead
}

// refuse is a Limiter that holds the tenants in it over their limit.
type refuse map[string]bool

func (r refuse) Allow(tenant string, _ int) bool { return !r[tenant] }

// A tenant over its ingest_per_second limit must be told to come back, in
// the status its sender retries: a sender that takes the answer as final
// drops the alert. 429 for senders that back off on it (Prometheus re-sends
// active alerts on its own, EventBridge API destinations retry 429); 503
// for the Alertmanager webhook notifier, which retries only 5xx, and for
// SNS, which takes any status below 500 as delivered. Before, every
// endpoint answered 429: lost by Alertmanager and SNS.
func TestTenantIngestLimit(t *testing.T) {
	limits := &receiver.RateLimits{PerSecond: func(tenant string) float64 {
		if tenant == "small" {
			return 2
		}
		return 0
	}}
	h := newHarness(t, receiver.Config{Limiter: limits})
	codes := map[int]int{}
	for i := 0; i < 5; i++ {
		r := h.post("/api/v2/alerts", fmt.Sprintf(`[{"labels":{"a":"%d"}}]`, i), "X-Scope-OrgID", "small")
		codes[r.code]++
		if r.code == 429 && r.header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if codes[200] < 2 || codes[429] == 0 {
		t.Fatalf("codes %v: want the first 2 accepted and later ones limited", codes)
	}
	for i := 0; i < 5; i++ {
		if r := h.post("/api/v2/alerts", fmt.Sprintf(`[{"labels":{"b":"%d"}}]`, i), "X-Scope-OrgID", "big"); r.code != 200 {
			t.Fatalf("unlimited tenant got %d", r.code)
		}
	}

	aws := newFakeAWS(t)
	h = newHarness(t, receiver.Config{Limiter: refuse{"small": true}, SNS: receiver.SNSConfig{Client: aws.client}})
	cases := []struct {
		path, body string
		code       int
	}{
		{"/api/v1/alertmanager", `{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"A"}}]}`, 503},
		{"/api/v1/sns", aws.sign(t, notification("2", "disk full"), aws.key).json(t), 503},
		{"/api/v2/alerts", `[{"labels":{"alertname":"A"}}]`, 429},
		{"/api/v1/eventbridge", `{"id":"1","detail-type":"Scheduled Event","source":"aws.events"}`, 429},
		{"/api/v1/k8s-events", `{"EventType":"Warning","EventKind":"Pod","EventObject":"web-2","EventReason":"OOMKilled"}`, 429},
		{"/api/v1/heartbeat/nightly", ``, 429},
		{"/api/v1/slo/checkout/events", `{"good":1,"total":1}`, 429},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			r := h.post(c.path, c.body, "X-Scope-OrgID", "small")
			if r.code != c.code || r.header.Get("Retry-After") == "" {
				t.Fatalf("code %d Retry-After %q, want %d with Retry-After: %v", r.code, r.header.Get("Retry-After"), c.code, r.body)
			}
			if msg, _ := r.body["error"].(string); !strings.Contains(msg, "tenant small") || !strings.Contains(msg, "rate limit") {
				t.Errorf("error %q does not say the tenant is over its rate limit", msg)
			}
		})
	}
	if n := len(h.stored()); n != 0 {
		t.Fatalf("stored %d while over the limit", n)
	}
}

// switchable is a Limiter over the limit until lifted.
type switchable struct{ over atomic.Bool }

func (s *switchable) Allow(string, int) bool { return !s.over.Load() }

// An Alertmanager forwarding to Klaxon (webhook_configs) must keep its
// notification when the tenant is over its rate limit, and deliver it once
// the limit lets it through. Driven by Alertmanager's own webhook notifier:
// its retry answer is what its retry stage acts on. Before, the 429 made it
// answer "do not retry" and the notification was given up.
func TestAlertmanagerWebhookRetriesWhenTenantOverRateLimit(t *testing.T) {
	lim := &switchable{}
	lim.over.Store(true)
	h := newHarness(t, receiver.Config{Limiter: lim})
	tmpl, err := amtemplate.FromGlobs(nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.ExternalURL, _ = url.Parse("http://alertmanager.example:9093")
	hc := commoncfg.DefaultHTTPClientConfig
	n, err := amwebhook.New(&amwebhook.WebhookConfig{
		URL: amcommoncfg.SecretTemplateURL(h.srv.URL + "/api/v1/alertmanager"), HTTPConfig: &hc,
	}, tmpl, bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := amnotify.WithGroupKey(context.Background(), `{}:{alertname="DiskFull"}`)
	ctx = amnotify.WithReceiverName(ctx, "klaxon")
	ctx = amnotify.WithGroupLabels(ctx, model.LabelSet{"alertname": "DiskFull"})
	ctx = amnotify.WithNotificationReason(ctx, amnotify.ReasonFirstNotification)
	a := &amalert.Alert{Alert: model.Alert{
		Labels:   model.LabelSet{"alertname": "DiskFull", "instance": "db-1"},
		StartsAt: testNow.Add(-time.Minute),
	}}

	retry, err := n.Notify(ctx, a)
	if err == nil || !retry {
		t.Fatalf("over the limit: retry %v, err %v; want an error Alertmanager retries", retry, err)
	}
	if !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "rate limit") {
		t.Errorf("error %q: want the 503 and its reason in Alertmanager's log", err)
	}
	if n := len(h.stored()); n != 0 {
		t.Fatalf("stored %d while over the limit", n)
	}

	lim.over.Store(false)
	if retry, err := n.Notify(ctx, a); err != nil {
		t.Fatalf("retry after the limit: retry %v, err %v", retry, err)
	}
	envs := h.stored()
	if len(envs) != 1 || envs[0].GetAlert().GetLabels()["instance"] != "db-1" {
		t.Fatalf("stored %v, want the retried alert", envs)
	}
}

// Two Alertmanager replicas (an HA pair that did not gossip in time) send the
// same firing alert with endsAt a few milliseconds apart: stored once, and
// the endsAt of a webhook's firing alert does not expire it.
func TestAlertmanagerHAReplicasStoredOnce(t *testing.T) {
	h := newHarness(t, receiver.Config{})
	for _, ends := range []string{"2026-11-24T12:05:00.001Z", "2026-11-24T12:05:00.007Z"} {
		body := `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"HA"},
		  "startsAt":"2026-11-24T11:00:00Z","endsAt":"` + ends + `"}]}`
		if r := h.post("/api/v1/alertmanager", body); r.code != 200 {
			t.Fatalf("%d %v", r.code, r.body)
		}
	}
	envs := h.stored()
	if len(envs) != 1 {
		t.Fatalf("stored %d, want 1", len(envs))
	}
	if envs[0].GetAlert().EndsAt != nil {
		t.Fatalf("a firing webhook alert must not carry the sender's endsAt: %v", envs[0].GetAlert().EndsAt.AsTime())
	}
}

// Alertmanager re-sends a firing group every repeat_interval with the same
// alerts: each re-send is stored (an always-firing Watchdog is a heartbeat
// only if every delivery is a beat), while a copy within seconds of the
// first (a retried POST, the other replica) is one message. Before, every
// re-send within JetStream's 10-minute duplicate window was dropped, and a
// Watchdog heartbeat of 1m + 4m grace paged as dead.
func TestAlertmanagerResendsAreStored(t *testing.T) {
	now := testNow
	h := newHarness(t, receiver.Config{Now: func() time.Time { return now }})
	body := `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Watchdog"},
	  "startsAt":"2026-11-24T11:00:00Z","endsAt":"2026-11-24T12:05:00Z"}]}`
	for _, step := range []struct {
		after  time.Duration
		stored float64
	}{{0, 1}, {3 * time.Second, 0}, {time.Minute, 1}, {2 * time.Minute, 1}} {
		now = testNow.Add(step.after)
		r := h.post("/api/v1/alertmanager", body)
		if r.code != 200 || r.body["stored"] != step.stored {
			t.Fatalf("re-send after %v: %d %v, want stored %v", step.after, r.code, r.body, step.stored)
		}
	}
	if n := len(h.stored()); n != 3 {
		t.Fatalf("stored %d messages, want 3", n)
	}
}

func TestFingerprintIsAlertmanagers(t *testing.T) {
	sets := []map[string]string{
		{"alertname": "A"}, {"alertname": "HighLatency", "instance": "10.0.0.1:9100", "job": "node"}, {"a": "", "b": "ü"}, {},
	}
	for i := range 2000 { // about one in 16 has a leading zero digit
		sets = append(sets, map[string]string{"alertname": "A", "i": strconv.Itoa(i)})
	}
	for _, labels := range sets {
		ls := model.LabelSet{}
		for k, v := range labels {
			ls[model.LabelName(k)] = model.LabelValue(v)
		}
		if got, want := receiver.Fingerprint(labels), ls.Fingerprint().String(); got != want {
			t.Errorf("Fingerprint(%v) = %s, Alertmanager's is %s", labels, got, want)
		}
	}
}

// A request of many alerts is stored as one JetStream message (a batch
// envelope), every alert still its own envelope with its own id; retrying
// the request stores nothing new and reports every alert as a duplicate.
func TestBatchOfAlertsIsOneMessage(t *testing.T) {
	h := newHarness(t, receiver.Config{})
	var b strings.Builder
	b.WriteString("[")
	for i := 0; i < 256; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"labels":{"alertname":"Batch","id":"%d"},"startsAt":"2026-11-24T11:00:00Z"}`, i)
	}
	b.WriteString("]")
	for attempt := 0; attempt < 2; attempt++ {
		r := h.post("/api/v2/alerts", b.String())
		if r.code != 200 {
			t.Fatalf("attempt %d: %d %v", attempt, r.code, r.body)
		}
		wantStored, wantDups := 256.0, 0.0
		if attempt > 0 {
			wantStored, wantDups = 0, 256
		}
		if r.body["stored"] != wantStored || r.body["duplicates"] != wantDups {
			t.Fatalf("attempt %d: stored %v duplicates %v, want %v and %v", attempt, r.body["stored"], r.body["duplicates"], wantStored, wantDups)
		}
	}
	s, err := h.bus.JS.Stream(context.Background(), bus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("INGEST holds %d messages, want 1 batch", info.State.Msgs)
	}
	envs := h.stored()
	ids := map[string]bool{}
	for _, e := range envs {
		ids[e.Id] = true
	}
	if len(envs) != 256 || len(ids) != 256 {
		t.Fatalf("batch holds %d envelopes with %d distinct ids, want 256", len(envs), len(ids))
	}
}
