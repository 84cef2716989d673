package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/fastjson"
)

// Source names, also the last token of klaxon.in.<tenant>.<source>.
const (
	SourceAlertmanager = "alertmanager"
	SourceAlertsV2     = "api-v2"
	SourceSNS          = "sns"
	SourceEventBridge  = "eventbridge"
	SourceK8s          = "k8s"
	SourceHeartbeat    = "heartbeat"
	SourceSLO          = "slo"
)

// wireAlert is one alert as both the webhook v4 payload and the API v2
// postableAlerts carry it. Unknown fields are ignored on purpose: newer
// senders add fields.
type wireAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     *time.Time        `json:"startsAt"`
	EndsAt       *time.Time        `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// webhookSlot: copies of a webhook alert received within the same slot of
// this length are one message (a retried POST, the two replicas of an HA
// pair); copies further apart are re-sends, each stored. Copies that
// straddle a slot's end are stored twice, which is harmless: the engine
// merges them, and a window policy counts an alert by fingerprint and
// startsAt.
const webhookSlot = 10 * time.Second

// webhookMessage is the Alertmanager webhook payload, version 4.
type webhookMessage struct {
	Version  string      `json:"version"`
	GroupKey string      `json:"groupKey"`
	Status   string      `json:"status"`
	Receiver string      `json:"receiver"`
	Alerts   []wireAlert `json:"alerts"`
}

// decodeJSON decodes body into v and turns decoder errors into messages that
// name the offending field.
func decodeJSON(body []byte, v any) error { return decodeWith(json.Unmarshal, body, v) }

// decodeAlerts is decodeJSON for the alert payloads, the hot path of an
// alert storm: fastjson (goccy/go-json, for valid UTF-8 JSON only) decodes
// them about twice as fast as encoding/json, and returns encoding/json's
// errors, so a sender gets the same message naming the field;
// FuzzAlertDecodersAgree holds the two decoders to the same results.
func decodeAlerts(body []byte, v any) error { return decodeWith(fastjson.Unmarshal, body, v) }

func decodeWith(unmarshal func([]byte, any) error, body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badInput("empty body: expected JSON")
	}
	if err := unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		var pe *time.ParseError
		switch {
		case errors.As(err, &te):
			field := fmt.Sprintf("field %q", te.Field)
			if te.Field == "" {
				field = "body"
			}
			return badInput("%s: expected %s, got JSON %s", field, jsonKind(te.Type), te.Value)
		case errors.As(err, &se):
			return badInput("malformed JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &pe):
			return badInput("bad timestamp %q: expected RFC3339", pe.Value)
		default:
			return badInput("malformed JSON: %v", err)
		}
	}
	return nil
}

// jsonKind names what JSON a Go type takes, for an error a sender reads (it
// named Go types: "expected []receiver.postableAlert").
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another JSON type"
	}
	if t == reflect.TypeFor[time.Time]() {
		return "an RFC3339 timestamp string"
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another JSON type"
}

// ParseWebhook decodes an Alertmanager webhook v4 payload into alerts.
func ParseWebhook(body []byte) ([]wireAlert, error) {
	var m webhookMessage
	if err := decodeAlerts(body, &m); err != nil {
		return nil, err
	}
	if m.Alerts == nil {
		return nil, badInput(`field "alerts": required`)
	}
	if m.Version != "" && m.Version != "4" {
		return nil, badInput(`field "version": %q is not supported (expected "4")`, m.Version)
	}
	for i := range m.Alerts {
		a := &m.Alerts[i]
		if a.Status != "" && a.Status != "firing" && a.Status != "resolved" {
			return nil, badInput(`field "alerts[%d].status": must be firing or resolved, got %q`, i, a.Status)
		}
		if err := validateAlert("alerts[%d]", i, a); err != nil {
			return nil, err
		}
	}
	return m.Alerts, nil
}

// postableAlert is the API v2 shape: no status field (it is derived from
// endsAt); a sender that adds one, of any type, is ignored like any unknown field.
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     *time.Time        `json:"startsAt"`
	EndsAt       *time.Time        `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

// ParseAlertsV2 decodes an Alertmanager API v2 postableAlerts array as
// Alertmanager's API takes it: labels with an empty value are dropped (an
// alert's identity, and its fingerprint, are its non-empty labels), and the
// valid alerts are kept when others are not. invalid names those (nil when
// every alert is valid); err is a body that is no such array.
func ParseAlertsV2(body []byte) (alerts []wireAlert, invalid error, err error) {
	var posted []postableAlert
	if err := decodeAlerts(body, &posted); err != nil {
		return nil, nil, err
	}
	alerts = make([]wireAlert, 0, len(posted))
	var bad []string
	for i, p := range posted {
		for k, v := range p.Labels {
			if v == "" {
				delete(p.Labels, k)
			}
		}
		a := wireAlert{Labels: p.Labels, Annotations: p.Annotations, StartsAt: p.StartsAt, EndsAt: p.EndsAt, GeneratorURL: p.GeneratorURL}
		if err := validateAlert("[%d]", i, &a); err != nil {
			// Bounded: a storm of bad alerts names the first few.
			if len(bad) < 10 {
				bad = append(bad, err.Error())
			} else if len(bad) == 10 {
				bad = append(bad, "…")
			}
			continue
		}
		alerts = append(alerts, a)
	}
	if len(bad) > 0 {
		invalid = badInput("%d of %d alerts invalid, the other %d stored: %s", len(posted)-len(alerts), len(posted), len(alerts), strings.Join(bad, "; "))
	}
	return alerts, invalid, nil
}

// validateAlert checks alert i of a payload; pathf with i names it in an
// error (rendered only then: this runs for every alert of a storm).
func validateAlert(pathf string, i int, a *wireAlert) error {
	path := func() string { return fmt.Sprintf(pathf, i) }
	if len(a.Labels) == 0 {
		return badInput("field %q: required, at least one label", path()+".labels")
	}
	// encoding/json already guarantees valid UTF-8 (Alertmanager's names are
	// UTF-8 too): only the empty name is left to reject.
	if _, ok := a.Labels[""]; ok {
		return badInput("field %q: invalid label name %q", path()+".labels", "")
	}
	if _, ok := a.Annotations[""]; ok {
		return badInput("field %q: invalid annotation name %q", path()+".annotations", "")
	}
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"startsAt", a.StartsAt}, {"endsAt", a.EndsAt}} {
		if f.t != nil && !f.t.IsZero() && !storable(*f.t) {
			return storableTime(path()+"."+f.name, *f.t)
		}
	}
	if a.StartsAt != nil && a.EndsAt != nil && !a.EndsAt.IsZero() && !a.StartsAt.IsZero() && a.EndsAt.Before(*a.StartsAt) {
		return badInput("field %q: endsAt is before startsAt", path()+".endsAt")
	}
	return nil
}

// toEnvelope normalises an alert the way Alertmanager's API does: a missing
// startsAt is now (or endsAt if that is set), status follows endsAt unless the
// sender said it (webhook payloads carry an explicit status).
func toEnvelope(req *request, source string, a *wireAlert) *klaxonv1.Envelope {
	now := req.now
	var startsAt, endsAt time.Time
	if a.StartsAt != nil {
		startsAt = *a.StartsAt
	}
	if a.EndsAt != nil {
		endsAt = *a.EndsAt
	}
	if startsAt.IsZero() {
		if endsAt.IsZero() {
			startsAt = now
		} else {
			startsAt = endsAt
		}
	}
	status := a.Status
	if status == "" {
		status = "firing"
		if !endsAt.IsZero() && !endsAt.After(now) {
			status = "resolved"
		}
	}
	// Alertmanager sends the zero time 0001-01-01 for "no endsAt".
	if endsAt.Year() <= 1 {
		endsAt = time.Time{}
	}
	fp := Fingerprint(a.Labels)
	al := &klaxonv1.Alert{
		Labels:       a.Labels,
		Annotations:  a.Annotations,
		StartsAt:     timestamppb.New(startsAt),
		GeneratorUrl: a.GeneratorURL,
		Fingerprint:  fp,
		Status:       klaxonv1.AlertStatus_ALERT_STATUS_FIRING,
	}
	if status == "resolved" {
		al.Status = klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED
		if endsAt.IsZero() {
			endsAt = now
		}
	}
	identityEnd := endsAt
	if a.Status != "" {
		// Webhook payloads carry an explicit status, and Alertmanager re-sends a
		// firing group only every repeat_interval: its endsAt (now +
		// resolve_timeout at the Alertmanager) must not expire the alert here.
		// Nor is it part of the identity: two Alertmanager replicas send the same
		// alert with endsAt a few ms apart, and must be stored once. The
		// time of receipt, to the webhookSlot, is: each re-send is stored,
		// as a Watchdog's heartbeat needs every one (deduplicated for
		// JetStream's 10-minute window, a 1-minute Watchdog beat once in
		// ten, and its dead-man switch paged).
		identityEnd = now.Truncate(webhookSlot)
		if status == "firing" {
			endsAt = time.Time{}
		}
	}
	if !endsAt.IsZero() {
		al.EndsAt = timestamppb.New(endsAt)
	}
	env := newEnvelope(req, source, alertIdentity(fp, status, startsAt, identityEnd))
	env.Payload = &klaxonv1.Envelope_Alert{Alert: al}
	return env
}

func (rc *Receiver) alertmanager(_ context.Context, req *request) (*result, error) {
	alerts, err := ParseWebhook(req.body)
	if err != nil {
		return nil, err
	}
	res := &result{envelopes: make([]*klaxonv1.Envelope, 0, len(alerts)), batch: true}
	for i := range alerts {
		res.envelopes = append(res.envelopes, toEnvelope(req, SourceAlertmanager, &alerts[i]))
	}
	return res, nil
}

func (rc *Receiver) alertsV2(_ context.Context, req *request) (*result, error) {
	alerts, invalid, err := ParseAlertsV2(req.body)
	if err != nil {
		return nil, err
	}
	res := &result{envelopes: make([]*klaxonv1.Envelope, 0, len(alerts)), batch: true}
	for i := range alerts {
		res.envelopes = append(res.envelopes, toEnvelope(req, SourceAlertsV2, &alerts[i]))
	}
	if invalid != nil {
		// As Alertmanager: the valid alerts are stored, and the answer is
		// 400 naming the others. Prometheus does not resend a batch
		// answered 4xx: refusing it whole lost its valid alerts.
		res.status = http.StatusBadRequest
		res.extra = map[string]any{"status": "error", "error": invalid.Error()}
	}
	return res, nil
}

// storable: t fits a protobuf Timestamp (years 1 to 9999), checked on the
// stack rather than through timestamppb.New's allocation.
func storable(t time.Time) bool {
	ts := timestamppb.Timestamp{Seconds: t.Unix(), Nanos: int32(t.Nanosecond())}
	return ts.CheckValid() == nil
}

// storableTime refuses, naming field, a time an envelope cannot hold: JSON
// takes years 0000-9999 with any offset, a protobuf Timestamp only
// 0001-01-01 to 9999-12-31 UTC.
func storableTime(field string, t time.Time) error {
	if !storable(t) {
		return badInput("field %q: %s is out of range", field, t.Format(time.RFC3339))
	}
	return nil
}
