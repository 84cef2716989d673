package receiver_test

import (
	"maps"
	"testing"

	"github.com/klaxon-sh/klaxon/services/receiver"
)

// One CloudTrail API call often reaches Klaxon by two routes: an EventBridge
// rule posts it within seconds, and a relay of the trail (CloudTrail records
// published to SNS) posts the same record minutes later, past JetStream's
// duplicate window. A window policy ("3 DeleteCluster calls in 10 minutes")
// counts events by kind and Event.Id, so every route must give the record
// one identity, its eventID, in Event.Id and in the message id. Before, the
// EventBridge route set Event.Id to the EventBridge event's own id while SNS
// set the eventID: one API call counted twice.
func TestCloudTrailRecordIsOneEventWhateverTheRoute(t *testing.T) {
	const eventID = "e1b2c3d4-0000-1111-2222-333344445555"
	record := `{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::123456789012:assumed-role/admin/alice"},
	  "eventTime":"2026-11-24T11:58:00Z","eventSource":"eks.amazonaws.com","eventName":"DeleteCluster","awsRegion":"eu-west-1",
	  "sourceIPAddress":"198.51.100.7","eventID":"` + eventID + `","readOnly":false,"eventType":"AwsApiCall","recipientAccountId":"123456789012"}`
	ebEvent := `{"version":"0","id":"6f87d04b-9f74-4f04-a780-7acf4b0a9b38","detail-type":"AWS API Call via CloudTrail","source":"aws.eks",
	  "account":"123456789012","time":"2026-11-24T11:58:00Z","region":"eu-west-1","resources":[],"detail":` + record + `}`
	routes := []struct {
		name, path, sns string // sns: the SNS Message; empty posts body to path as is
	}{
		{"EventBridge API destination", "/api/v1/eventbridge", ""},
		{"EventBridge rule to SNS", "/api/v1/sns", ebEvent},
		{"trail records to SNS", "/api/v1/sns", `{"Records":[` + record + `]}`},
		{"one record to SNS", "/api/v1/sns", record},
	}
	aws := newFakeAWS(t)
	cfg := receiver.Config{SNS: receiver.SNSConfig{Client: aws.client}}
	body := func(t *testing.T, i int) string {
		if routes[i].sns == "" {
			return ebEvent
		}
		m := notification("2", routes[i].sns)
		m["MessageId"] = routes[i].name // each SNS delivery has its own MessageId
		return aws.sign(t, m, aws.key).json(t)
	}

	// Each route alone, as a window policy sees the second copy once
	// JetStream no longer drops it: the same id and the same labels (a
	// policy keyed on account or region; a trail's record carried none of
	// EventBridge's).
	var firstID string
	var firstLabels map[string]string
	for i, r := range routes {
		h := newHarness(t, cfg)
		if resp := h.post(r.path, body(t, i)); resp.code != 200 {
			t.Fatalf("%s: code %d %v", r.name, resp.code, resp.body)
		}
		envs := h.stored()
		if len(envs) != 1 {
			t.Fatalf("%s: stored %d", r.name, len(envs))
		}
		ev := envs[0].GetEvent()
		if ev.GetKind() != "cloudtrail" || ev.GetId() != eventID {
			t.Errorf("%s: event kind %q id %q, want cloudtrail %q", r.name, ev.GetKind(), ev.GetId(), eventID)
		}
		if i == 0 {
			firstID, firstLabels = envs[0].Id, ev.GetLabels()
		} else if envs[0].Id != firstID {
			t.Errorf("%s: message id %s, want %s as from EventBridge", r.name, envs[0].Id, firstID)
		} else if !maps.Equal(ev.GetLabels(), firstLabels) {
			t.Errorf("%s: labels %v, want EventBridge's %v", r.name, ev.GetLabels(), firstLabels)
		}
	}

	// All routes within the duplicate window: stored once.
	h := newHarness(t, cfg)
	for i, r := range routes {
		if resp := h.post(r.path, body(t, i)); resp.code != 200 {
			t.Fatalf("%s: code %d %v", r.name, resp.code, resp.body)
		}
	}
	if n := len(h.stored()); n != 1 {
		t.Fatalf("stored %d, want the API call once", n)
	}
}
