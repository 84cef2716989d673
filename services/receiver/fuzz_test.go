package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// The fuzz targets assert that no input makes a parser panic, and that what
// a parser accepts can be turned into envelopes.

func fuzzReq() *request {
	return &request{tenant: "t", now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func FuzzParseWebhook(f *testing.F) {
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"alerts":[{"labels":{"a":"b"},"endsAt":"0001-01-01T00:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		alerts, err := ParseWebhook(body)
		if err != nil {
			return
		}
		for i := range alerts {
			if env := toEnvelope(fuzzReq(), SourceAlertmanager, &alerts[i]); env.Id == "" {
				t.Fatal("empty id")
			}
		}
	})
}

func FuzzParseAlertsV2(f *testing.F) {
	f.Add([]byte(`[{"labels":{"alertname":"x"},"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T01:00:00Z"}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		alerts, _, err := ParseAlertsV2(body)
		if err != nil {
			return
		}
		for i := range alerts {
			toEnvelope(fuzzReq(), SourceAlertsV2, &alerts[i])
		}
	})
}

func FuzzParseSNS(f *testing.F) {
	f.Add([]byte(`{"Type":"Notification","MessageId":"1","TopicArn":"a","Timestamp":"2026-01-01T00:00:00Z","SignatureVersion":"1","Signature":"x","SigningCertURL":"https://sns.us-east-1.amazonaws.com/a.pem","Message":"{\"detail-type\":\"x\",\"id\":\"1\",\"source\":\"s\"}"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseSNS(body)
		if err != nil {
			return
		}
		_ = m.stringToSign()
		// A certificate URL is admitted only as written canonically: one URL,
		// one fetch, one cache entry.
		if u, err := checkSigningCertURL(m.SigningCertURL); err == nil && u != m.SigningCertURL {
			t.Fatalf("SigningCertURL %q admitted as %q", m.SigningCertURL, u)
		}
		_, _ = snsNotification(fuzzReq(), m)
	})
}

func FuzzParseEventBridge(f *testing.F) {
	f.Add([]byte(`{"id":"1","detail-type":"AWS API Call via CloudTrail","source":"aws.eks","time":"2026-01-01T00:00:00Z","detail":{"eventID":"e","eventName":"DeleteCluster","responseElements":{"ConsoleLogin":"Failure"}}}`))
	f.Add([]byte(`[{"id":"1","detail-type":"x","source":"s"}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _ = parseEventBridge(fuzzReq(), body)
	})
}

func FuzzParseK8sEvents(f *testing.F) {
	f.Add([]byte(`{"metadata":{"uid":"u"},"involvedObject":{"kind":"Pod","name":"p","fieldPath":"spec.containers{c}"},"reason":"BackOff","count":2}`))
	f.Add([]byte(`{"items":[]}`))
	f.Add([]byte(`{"EventReason":"OOMKilled","EventTime":"x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _ = parseK8sEvents(fuzzReq(), body)
	})
}

// namedRequest is a POST to path whose {name} is name, with body, at now.
func namedRequest(path, name string, body []byte, now time.Time) *request {
	r := httptest.NewRequest(http.MethodPost, path, nil)
	r.SetPathValue("name", name)
	return &request{Request: r, tenant: "t", body: body, now: now}
}

// requireClientError fails unless err is an input error (a 4xx answer).
func requireClientError(t *testing.T, err error) {
	t.Helper()
	var ie *inputError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v is not a client error (the handler would answer 5xx)", err)
	}
}

func FuzzSLOEvents(f *testing.F) {
	f.Add("checkout", []byte(`{"good":99,"total":100}`))
	f.Add("checkout", []byte(`{"good":0,"total":0,"time":"2026-01-01T00:00:00Z","id":"batch-1"}`))
	f.Add("checkout", []byte(`{"good":5,"total":4}`))
	f.Add("checkout", []byte(`{"good":-1,"total":4,"time":"2026-01-01T00:00:00+23:59"}`))
	f.Add("a.b:c-d_e", []byte(`{"total":1,"good":1,"id":""}`))
	f.Add("checkout", []byte(`{"good":1,"total":1,"time":"0000-01-01T00:00:00Z"}`))
	f.Add("checkout", []byte(`{"good":1,"total":1,"time":"9999-12-31T23:59:59-23:59"}`))
	f.Add("", []byte(`{"good":1,"total":1}`))
	rc := &Receiver{}
	now := fuzzReq().now
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		res, err := rc.sloEvents(context.Background(), namedRequest("/api/v1/slo/x/events", name, body, now))
		if err != nil {
			requireClientError(t, err)
			return
		}
		if !nameRE.MatchString(name) {
			t.Fatalf("accepted SLO name %q", name)
		}
		if res.status != http.StatusAccepted || len(res.envelopes) != 1 {
			t.Fatalf("result %+v, want one envelope and 202", res)
		}
		env := res.envelopes[0]
		ev := env.GetEvent()
		if env.Id == "" || env.Source != SourceSLO || env.Tenant != "t" || ev == nil {
			t.Fatalf("envelope %v", env)
		}
		if ev.Kind != "slo" || ev.Name != name || ev.Id == "" {
			t.Fatalf("event %v", ev)
		}
		if ev.Good < 0 || ev.Total < 0 || ev.Good > ev.Total {
			t.Fatalf("counts good=%d total=%d break 0 <= good <= total", ev.Good, ev.Total)
		}
		if err := ev.Time.CheckValid(); err != nil {
			t.Fatalf("event time %v cannot be stored: %v", ev.Time, err)
		}
		if _, err := proto.Marshal(env); err != nil {
			t.Fatalf("envelope does not marshal: %v", err)
		}
		// A sender's id makes a retry the same message (JetStream dedup);
		// without one, every POST counts.
		again, err := rc.sloEvents(context.Background(), namedRequest("/api/v1/slo/x/events", name, body, now.Add(time.Second)))
		if err != nil {
			t.Fatalf("accepted once, rejected on retry: %v", err)
		}
		var c sloCounts
		_ = json.Unmarshal(body, &c)
		if same := again.envelopes[0].Id == env.Id; same != (c.ID != "") {
			t.Fatalf("retry with id %q got the same envelope id: %v", c.ID, same)
		}
	})
}

func FuzzHeartbeat(f *testing.F) {
	f.Add("nightly-backup", []byte(``))
	f.Add("nightly-backup", []byte(" \n"))
	f.Add("Watchdog", []byte(`{"version":"4","status":"firing","alerts":[{"labels":{"alertname":"Watchdog"}}]}`))
	f.Add("x", []byte(`{"a":`))
	f.Add("x", []byte(`null`))
	f.Add("-x", []byte(`{}`))
	rc := &Receiver{}
	now := fuzzReq().now
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		res, err := rc.heartbeat(context.Background(), namedRequest("/api/v1/heartbeat/x", name, body, now))
		if err != nil {
			requireClientError(t, err)
			return
		}
		if !nameRE.MatchString(name) {
			t.Fatalf("accepted heartbeat name %q", name)
		}
		if len(res.envelopes) != 1 {
			t.Fatalf("%d envelopes, want 1", len(res.envelopes))
		}
		env := res.envelopes[0]
		ev := env.GetEvent()
		if env.Id == "" || env.Source != SourceHeartbeat || ev == nil || ev.Kind != "heartbeat" || ev.Name != name {
			t.Fatalf("envelope %v", env)
		}
		if !ev.Time.AsTime().Equal(now) {
			t.Fatalf("beat at %v, received at %v", ev.Time.AsTime(), now)
		}
		// The raw body is kept for the notification: trimmed, and JSON if any.
		if !bytes.Equal(ev.Raw, bytes.TrimSpace(body)) || (len(ev.Raw) > 0 && !json.Valid(ev.Raw)) {
			t.Fatalf("raw %q of body %q", ev.Raw, body)
		}
		if _, err := proto.Marshal(env); err != nil {
			t.Fatalf("envelope does not marshal: %v", err)
		}
		// Each beat is its own occurrence: a later one is not deduplicated.
		again, err := rc.heartbeat(context.Background(), namedRequest("/api/v1/heartbeat/x", name, body, now.Add(time.Nanosecond)))
		if err != nil || again.envelopes[0].Id == env.Id {
			t.Fatalf("second beat: err=%v, same id %v", err, err == nil && again.envelopes[0].Id == env.Id)
		}
	})
}

// The alert payloads are decoded by goccy/go-json (decodeAlerts) for speed:
// whatever it accepts must decode to exactly what encoding/json makes of it
// (labels with invalid UTF-8, duplicate keys, case-folded field names,
// escapes, odd timestamps), and what encoding/json refuses it must refuse too.
func FuzzAlertDecodersAgree(f *testing.F) {
	f.Add([]byte(`[{"labels":{"alertname":"x","a":"\u00e9\ud83d\ude00"},"annotations":{"s":"y"},"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T01:00:00+02:00","generatorURL":"u"}]`))
	f.Add([]byte(`[{"LABELS":{"a":"b","a":"c"},"startsAt":null}]`))
	f.Add([]byte("[{\"labels\":{\"a\":\"\xff\xfe\"}}]"))
	f.Add([]byte(`[{"labels":{"a":"\ud800x\udc00","\u0000":"\/"}},{"labels":{}}]`))
	f.Add([]byte(`{"version":"4","status":"firing","alerts":[{"status":"resolved","labels":{"a":"b"},"fingerprint":"f"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var std, fast []postableAlert
		stdErr := json.Unmarshal(body, &std)
		if stdErr != nil {
			// Refused with encoding/json's message, naming the field.
			var again []postableAlert
			if err, want := decodeAlerts(body, &again), decodeJSON(body, &again); err == nil || err.Error() != want.Error() {
				t.Fatalf("encoding/json refuses %q (%v); decodeAlerts: %v", body, want, err)
			}
			return
		}
		if err := decodeAlerts(body, &fast); err != nil {
			t.Fatalf("encoding/json accepts %q, decodeAlerts refuses it: %v", body, err)
		}
		a, _ := json.Marshal(std)
		b, _ := json.Marshal(fast)
		if !bytes.Equal(a, b) {
			t.Fatalf("decoders disagree on %q:\nencoding/json %s\ngoccy         %s", body, a, b)
		}
		var stdW, fastW webhookMessage
		if json.Unmarshal(body, &stdW) == nil && decodeAlerts(body, &fastW) == nil {
			a, _ = json.Marshal(stdW)
			b, _ = json.Marshal(fastW)
			if !bytes.Equal(a, b) {
				t.Fatalf("decoders disagree on webhook %q:\nencoding/json %s\ngoccy         %s", body, a, b)
			}
		}
	})
}
