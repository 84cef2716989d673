package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ctRecord holds the CloudTrail fields rules can match on.
type ctRecord struct {
	EventVersion     string          `json:"eventVersion"`
	EventID          string          `json:"eventID"`
	EventTime        string          `json:"eventTime"`
	EventSource      string          `json:"eventSource"`
	EventName        string          `json:"eventName"`
	EventType        string          `json:"eventType"`
	AWSRegion        string          `json:"awsRegion"`
	SourceIP         string          `json:"sourceIPAddress"`
	UserAgent        string          `json:"userAgent"`
	ErrorCode        string          `json:"errorCode"`
	ErrorMessage     string          `json:"errorMessage"`
	ReadOnly         *bool           `json:"readOnly"`
	Account          string          `json:"recipientAccountId"`
	UserIdentity     ctIdentity      `json:"userIdentity"`
	ResponseElements json.RawMessage `json:"responseElements"`
}

type ctIdentity struct {
	Type        string `json:"type"`
	ARN         string `json:"arn"`
	AccountID   string `json:"accountId"`
	PrincipalID string `json:"principalId"`
	UserName    string `json:"userName"`
	InvokedBy   string `json:"invokedBy"`
}

// Fields rules can name, with how to read them from a record. "action" is the
// IAM-style service:EventName ("eks:DeleteCluster"), the form operators write.
var fields = map[string]func(*ctRecord) string{
	"action":             func(r *ctRecord) string { return r.action() },
	"eventSource":        func(r *ctRecord) string { return r.EventSource },
	"eventName":          func(r *ctRecord) string { return r.EventName },
	"eventType":          func(r *ctRecord) string { return r.EventType },
	"awsRegion":          func(r *ctRecord) string { return r.AWSRegion },
	"errorCode":          func(r *ctRecord) string { return r.ErrorCode },
	"sourceIPAddress":    func(r *ctRecord) string { return r.SourceIP },
	"userAgent":          func(r *ctRecord) string { return r.UserAgent },
	"recipientAccountId": func(r *ctRecord) string { return r.Account },
	"userIdentity.type":  func(r *ctRecord) string { return r.UserIdentity.Type },
	"userIdentity.arn":   func(r *ctRecord) string { return r.UserIdentity.ARN },
	"userIdentity.invokedBy": func(r *ctRecord) string {
		return r.UserIdentity.InvokedBy
	},
	"userName":     func(r *ctRecord) string { return r.UserIdentity.UserName },
	"consoleLogin": func(r *ctRecord) string { return r.consoleLogin() },
	"readOnly": func(r *ctRecord) string {
		if r.ReadOnly == nil {
			return ""
		}
		return strconv.FormatBool(*r.ReadOnly)
	},
}

func (r *ctRecord) field(name string) string { return fields[name](r) }

func (r *ctRecord) action() string {
	svc, _, _ := strings.Cut(r.EventSource, ".")
	return svc + ":" + r.EventName
}

// consoleLogin is "Success" or "Failure" for sign-in events.
func (r *ctRecord) consoleLogin() string {
	var re struct {
		ConsoleLogin string `json:"ConsoleLogin"`
	}
	if len(r.ResponseElements) > 0 && r.ResponseElements[0] == '{' && json.Unmarshal(r.ResponseElements, &re) == nil {
		return re.ConsoleLogin
	}
	return ""
}

// who names the principal for a human reader.
func (r *ctRecord) who() string {
	switch {
	case r.UserIdentity.Type == "Root":
		return "root user of " + r.UserIdentity.AccountID
	case r.UserIdentity.ARN != "":
		return r.UserIdentity.ARN
	case r.UserIdentity.UserName != "":
		return r.UserIdentity.UserName
	case r.UserIdentity.InvokedBy != "":
		return r.UserIdentity.InvokedBy
	}
	return "unknown principal"
}

// event is one CloudTrail record with the EventBridge event that carries it
// to the receiver.
type event struct {
	rec ctRecord
	eb  json.RawMessage
}

// ebEnvelope is the part of an EventBridge event the alerter reads.
type ebEnvelope struct {
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Detail     json.RawMessage `json:"detail"`
}

// snsEnvelope is the Lambda SNS event; Message is a string holding JSON.
type snsEnvelope struct {
	Records []struct {
		EventSource string `json:"EventSource"`
		Sns         struct {
			MessageID string `json:"MessageId"`
			Message   string `json:"Message"`
		} `json:"Sns"`
	} `json:"Records"`
}

var errUnknownInput = errors.New("input is neither an EventBridge event nor an SNS event")

// decodeInput accepts an EventBridge event, or an SNS event whose messages
// are EventBridge events, single CloudTrail records or {"Records":[...]}
// batches of them. Messages that are none of these are skipped with a reason.
func decodeInput(raw []byte) (evs []event, skipped []string, err error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, nil, fmt.Errorf("decode input: %w", err)
	}
	switch {
	case probe["detail-type"] != nil:
		ev, err := fromEventBridge(raw)
		if err != nil {
			return nil, nil, err
		}
		return []event{ev}, nil, nil
	case probe["Records"] != nil:
		var sns snsEnvelope
		if err := json.Unmarshal(raw, &sns); err != nil {
			return nil, nil, fmt.Errorf("decode SNS event: %w", err)
		}
		for i, r := range sns.Records {
			if r.EventSource != "aws:sns" {
				skipped = append(skipped, fmt.Sprintf("Records[%d]: EventSource %q is not aws:sns", i, r.EventSource))
				continue
			}
			got, err := fromMessage([]byte(r.Sns.Message))
			if err != nil {
				skipped = append(skipped, fmt.Sprintf("SNS message %s: %v", r.Sns.MessageID, err))
				continue
			}
			evs = append(evs, got...)
		}
		return evs, skipped, nil
	}
	return nil, nil, errUnknownInput
}

// fromMessage parses an SNS Message: JSON inside a string, hence the second
// parse.
func fromMessage(msg []byte) ([]event, error) {
	msg = bytes.TrimSpace(msg)
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(msg, &probe); err != nil {
		return nil, fmt.Errorf("message is not a JSON object: %w", err)
	}
	switch {
	case probe["detail-type"] != nil:
		ev, err := fromEventBridge(msg)
		if err != nil {
			return nil, err
		}
		return []event{ev}, nil
	case probe["eventID"] != nil && probe["eventName"] != nil:
		ev, err := fromRecord(msg)
		if err != nil {
			return nil, err
		}
		return []event{ev}, nil
	case probe["Records"] != nil:
		var recs []json.RawMessage
		if err := json.Unmarshal(probe["Records"], &recs); err != nil {
			return nil, fmt.Errorf("field Records: %w", err)
		}
		out := make([]event, 0, len(recs))
		for i, r := range recs {
			ev, err := fromRecord(r)
			if err != nil {
				return nil, fmt.Errorf("field Records[%d]: %w", i, err)
			}
			out = append(out, ev)
		}
		return out, nil
	}
	return nil, errors.New("message holds no CloudTrail record (log-file delivery notices are not read)")
}

func fromEventBridge(raw []byte) (event, error) {
	var eb ebEnvelope
	if err := json.Unmarshal(raw, &eb); err != nil {
		return event{}, fmt.Errorf("decode EventBridge event: %w", err)
	}
	if eb.ID == "" || eb.DetailType == "" || eb.Source == "" {
		return event{}, errors.New(`EventBridge event: "id", "detail-type" and "source" are required`)
	}
	var rec ctRecord
	if len(eb.Detail) > 0 && eb.Detail[0] == '{' {
		if err := json.Unmarshal(eb.Detail, &rec); err != nil {
			return event{}, fmt.Errorf("EventBridge event %s: detail: %w", eb.ID, err)
		}
	}
	if rec.AWSRegion == "" {
		rec.AWSRegion = eb.Region
	}
	if rec.Account == "" {
		rec.Account = eb.Account
	}
	return event{rec: rec, eb: append(json.RawMessage(nil), raw...)}, nil
}

// fromRecord wraps a bare CloudTrail record in the EventBridge envelope
// CloudTrail itself would have produced, so the receiver gets one shape.
func fromRecord(raw []byte) (event, error) {
	var rec ctRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return event{}, fmt.Errorf("decode CloudTrail record: %w", err)
	}
	if rec.EventID == "" || rec.EventName == "" {
		return event{}, errors.New(`CloudTrail record: "eventID" and "eventName" are required`)
	}
	detailType := "AWS API Call via CloudTrail"
	if rec.EventType == "AwsConsoleSignIn" {
		detailType = "AWS Console Sign In via CloudTrail"
	}
	svc, _, _ := strings.Cut(rec.EventSource, ".")
	eb := map[string]any{
		"version":     "0",
		"id":          derivedID("ct", rec.EventID),
		"detail-type": detailType,
		"source":      "aws." + svc,
		"account":     rec.Account,
		"time":        rec.EventTime,
		"region":      rec.AWSRegion,
		"resources":   []string{},
		"detail":      json.RawMessage(raw),
	}
	b, err := json.Marshal(eb)
	if err != nil {
		return event{}, fmt.Errorf("wrap CloudTrail record: %w", err)
	}
	return event{rec: rec, eb: b}, nil
}

// derivedID makes a stable UUID-shaped id, so a redelivered record gets the
// same id and the receiver stores it once.
func derivedID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}
