package receiver

import (
	"testing"
	"time"
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
		alerts, err := ParseAlertsV2(body)
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
		_ = checkSNSURL("SigningCertURL", m.SigningCertURL, true)
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
