package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
)

// ebEvent is the EventBridge event envelope.
type ebEvent struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// ctRecord holds the CloudTrail fields worth matching on.
type ctRecord struct {
	EventVersion string `json:"eventVersion"`
	EventID      string `json:"eventID"`
	EventTime    string `json:"eventTime"`
	EventSource  string `json:"eventSource"`
	EventName    string `json:"eventName"`
	EventType    string `json:"eventType"`
	AWSRegion    string `json:"awsRegion"`
	SourceIP     string `json:"sourceIPAddress"`
	UserAgent    string `json:"userAgent"`
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
	ReadOnly     *bool  `json:"readOnly"`
	Account      string `json:"recipientAccountId"`
	UserIdentity struct {
		Type        string `json:"type"`
		ARN         string `json:"arn"`
		AccountID   string `json:"accountId"`
		PrincipalID string `json:"principalId"`
		UserName    string `json:"userName"`
	} `json:"userIdentity"`
	ResponseElements json.RawMessage `json:"responseElements"`
}

func (c *ctRecord) labels() map[string]string {
	l := map[string]string{
		"eventName":          c.EventName,
		"eventSource":        c.EventSource,
		"eventType":          c.EventType,
		"awsRegion":          c.AWSRegion,
		"sourceIPAddress":    c.SourceIP,
		"errorCode":          c.ErrorCode,
		"recipientAccountId": c.Account,
		"userIdentity_type":  c.UserIdentity.Type,
		"userIdentity_arn":   c.UserIdentity.ARN,
		"userName":           c.UserIdentity.UserName,
	}
	if c.ReadOnly != nil {
		l["readOnly"] = fmt.Sprint(*c.ReadOnly)
	}
	// Console sign-in reports success or failure in responseElements.
	var re struct {
		ConsoleLogin string `json:"ConsoleLogin"`
	}
	if len(c.ResponseElements) > 0 && json.Unmarshal(c.ResponseElements, &re) == nil && re.ConsoleLogin != "" {
		l["consoleLogin"] = re.ConsoleLogin
	}
	return dropEmpty(l)
}

func dropEmpty(m map[string]string) map[string]string {
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m
}

// parseEventBridge accepts one EventBridge event or an array of them.
func parseEventBridge(req *request, body []byte) ([]*klaxonv1.Envelope, error) {
	trimmed := bytes.TrimSpace(body)
	var events []json.RawMessage
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := decodeJSON(trimmed, &events); err != nil {
			return nil, err
		}
		if len(events) == 0 {
			return nil, badInput("empty event array")
		}
	} else {
		events = []json.RawMessage{trimmed}
	}
	envs := make([]*klaxonv1.Envelope, 0, len(events))
	for i, raw := range events {
		path := ""
		if len(events) > 1 || (len(trimmed) > 0 && trimmed[0] == '[') {
			path = fmt.Sprintf("[%d].", i)
		}
		var ev ebEvent
		if err := decodeJSON(raw, &ev); err != nil {
			return nil, err
		}
		for _, f := range []struct{ name, v string }{{"id", ev.ID}, {"detail-type", ev.DetailType}, {"source", ev.Source}} {
			if f.v == "" {
				return nil, badInput("field %q: required", path+f.name)
			}
		}
		t, err := time.Parse(time.RFC3339, ev.Time)
		if ev.Time != "" && err != nil {
			return nil, badInput("field %q: %v", path+"time", err)
		}
		if ev.Time == "" {
			t = req.now
		}
		labels := map[string]string{
			"detail_type": ev.DetailType,
			"source":      ev.Source,
			"account":     ev.Account,
			"region":      ev.Region,
		}
		kind, id, identity := "eventbridge", ev.ID, "eb|"+ev.ID
		if len(ev.Detail) > 0 && ev.Detail[0] == '{' {
			var ct ctRecord
			if json.Unmarshal(ev.Detail, &ct) == nil && ct.EventName != "" {
				kind = "cloudtrail"
				for k, v := range ct.labels() {
					labels[k] = v
				}
				if ct.EventID != "" {
					// The same CloudTrail event may also arrive via SNS or a
					// trail: its eventID is its identity wherever it comes
					// from, for JetStream's dedup (the message id) and for
					// window policies (they count by kind and Event.Id).
					id, identity = ct.EventID, cloudTrailIdentity(ct.EventID)
				}
			}
		}
		env := newEnvelope(req, SourceEventBridge, identity)
		env.Payload = &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{
			Kind: kind, Id: id, Time: timestamppb.New(t), Labels: dropEmpty(labels), Raw: append([]byte(nil), raw...),
		}}
		envs = append(envs, env)
	}
	return envs, nil
}

// cloudTrailIdentity is a CloudTrail event's identity for EnvelopeID, always
// under SourceEventBridge whatever route the event came by.
func cloudTrailIdentity(eventID string) string { return "ct|" + eventID }

func cloudTrailRecords(req *request, raw json.RawMessage) ([]*klaxonv1.Envelope, error) {
	var recs []json.RawMessage
	if err := json.Unmarshal(raw, &recs); err != nil {
		return nil, badInput(`field "Records": %v`, err)
	}
	envs := make([]*klaxonv1.Envelope, 0, len(recs))
	for _, r := range recs {
		env, err := cloudTrailRecord(req, r)
		if err != nil {
			return nil, err
		}
		envs = append(envs, env)
	}
	return envs, nil
}

func cloudTrailRecord(req *request, raw []byte) (*klaxonv1.Envelope, error) {
	var ct ctRecord
	if err := json.Unmarshal(raw, &ct); err != nil {
		return nil, badInput("CloudTrail record: %v", err)
	}
	if ct.EventID == "" || ct.EventName == "" {
		return nil, badInput(`CloudTrail record: fields "eventID" and "eventName" are required`)
	}
	t, err := time.Parse(time.RFC3339, ct.EventTime)
	if err != nil {
		t = req.now
	}
	// Stored on the SNS subject, but with the id the same event gets from
	// EventBridge (parseEventBridge), so the two routes store it once.
	env := newEnvelope(req, SourceEventBridge, cloudTrailIdentity(ct.EventID))
	env.Source = SourceSNS
	labels := ct.labels()
	// And the labels EventBridge's envelope gives it, so a policy keyed or
	// matched on them (account, region, detail_type, source) sees one event
	// whatever the route; a trail's record carried only its own.
	for k, v := range ct.eventBridgeLabels() {
		labels[k] = v
	}
	env.Payload = &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{
		Kind: "cloudtrail", Id: ct.EventID, Time: timestamppb.New(t), Labels: dropEmpty(labels), Raw: append([]byte(nil), raw...),
	}}
	return env, nil
}

// ctDetailTypes: EventBridge's detail-type for a CloudTrail record's
// eventType.
var ctDetailTypes = map[string]string{
	"AwsApiCall":           "AWS API Call via CloudTrail",
	"AwsConsoleSignIn":     "AWS Console Sign In via CloudTrail",
	"AwsServiceEvent":      "AWS Service Event via CloudTrail",
	"AwsCloudTrailInsight": "AWS Insight via CloudTrail",
}

// eventBridgeLabels are the labels of the EventBridge event that carries
// record c: its detail-type, its source (aws.<service> of the record's
// eventSource), account and region.
func (c *ctRecord) eventBridgeLabels() map[string]string {
	source := ""
	if svc, ok := strings.CutSuffix(c.EventSource, ".amazonaws.com"); ok && svc != "" {
		source = "aws." + svc
	}
	return map[string]string{
		"detail_type": ctDetailTypes[c.EventType],
		"source":      source,
		"account":     c.Account,
		"region":      c.AWSRegion,
	}
}

func (rc *Receiver) eventbridge(_ context.Context, req *request) (*result, error) {
	envs, err := parseEventBridge(req, req.body)
	if err != nil {
		return nil, err
	}
	return &result{envelopes: envs}, nil
}
