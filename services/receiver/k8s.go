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

// k8sEvent covers core/v1 Event and events.k8s.io/v1 Event (regarding/note),
// the two shapes kube-eventer and event exporters send.
type k8sEvent struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		UID       string `json:"uid"`
	} `json:"metadata"`
	InvolvedObject *k8sObjectRef `json:"involvedObject"`
	Regarding      *k8sObjectRef `json:"regarding"`
	Reason         string        `json:"reason"`
	Message        string        `json:"message"`
	Note           string        `json:"note"`
	Type           string        `json:"type"`
	Count          int64         `json:"count"`
	Series         *struct {
		Count int64 `json:"count"`
	} `json:"series"`
	FirstTimestamp string `json:"firstTimestamp"`
	LastTimestamp  string `json:"lastTimestamp"`
	EventTime      string `json:"eventTime"`
	Source         struct {
		Component string `json:"component"`
		Host      string `json:"host"`
	} `json:"source"`
	ReportingController string `json:"reportingController"`
}

type k8sObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	FieldPath string `json:"fieldPath"`
}

// kubeEventerBody is kube-eventer's default webhook body template.
type kubeEventerBody struct {
	EventType      string `json:"EventType"`
	EventKind      string `json:"EventKind"`
	EventObject    string `json:"EventObject"`
	EventReason    string `json:"EventReason"`
	EventTime      string `json:"EventTime"`
	EventMessage   string `json:"EventMessage"`
	EventNamespace string `json:"EventNamespace"`
}

// parseK8sEvents accepts an Event, a watch event {"type","object"}, an
// EventList {"items"}, an array of Events, or kube-eventer's default body.
func parseK8sEvents(req *request, body []byte) ([]*klaxonv1.Envelope, error) {
	trimmed := bytes.TrimSpace(body)
	var raws []json.RawMessage
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := decodeJSON(trimmed, &raws); err != nil {
			return nil, err
		}
	} else {
		var probe map[string]json.RawMessage
		if err := decodeJSON(trimmed, &probe); err != nil {
			return nil, err
		}
		switch {
		case probe["items"] != nil:
			if err := json.Unmarshal(probe["items"], &raws); err != nil {
				return nil, badInput(`field "items": %v`, err)
			}
		case probe["object"] != nil && probe["type"] != nil:
			raws = []json.RawMessage{probe["object"]}
		case probe["EventReason"] != nil || probe["EventType"] != nil:
			env, err := kubeEventer(req, trimmed)
			if err != nil {
				return nil, err
			}
			return []*klaxonv1.Envelope{env}, nil
		default:
			raws = []json.RawMessage{trimmed}
		}
	}
	if len(raws) == 0 {
		return nil, badInput("no events in body")
	}
	envs := make([]*klaxonv1.Envelope, 0, len(raws))
	for i, raw := range raws {
		env, err := k8sEnvelope(req, raw, i, len(raws) > 1)
		if err != nil {
			return nil, err
		}
		envs = append(envs, env)
	}
	return envs, nil
}

func k8sEnvelope(req *request, raw json.RawMessage, i int, many bool) (*klaxonv1.Envelope, error) {
	path := ""
	if many {
		path = fmt.Sprintf("[%d].", i)
	}
	var ev k8sEvent
	if err := decodeJSON(raw, &ev); err != nil {
		return nil, err
	}
	obj := ev.InvolvedObject
	if obj == nil {
		obj = ev.Regarding
	}
	if obj == nil {
		return nil, badInput("field %q: required (or regarding)", path+"involvedObject")
	}
	if ev.Reason == "" {
		return nil, badInput("field %q: required", path+"reason")
	}
	if ev.Metadata.UID == "" {
		return nil, badInput("field %q: required", path+"metadata.uid")
	}
	msg := ev.Message
	if msg == "" {
		msg = ev.Note
	}
	count := ev.Count
	if ev.Series != nil && ev.Series.Count > count {
		count = ev.Series.Count
	}
	if count == 0 {
		count = 1
	}
	t := req.now
	for _, s := range []string{ev.LastTimestamp, ev.EventTime, ev.FirstTimestamp} {
		if s == "" {
			continue
		}
		if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
			t = ts
			break
		}
	}
	ns := obj.Namespace
	if ns == "" {
		ns = ev.Metadata.Namespace
	}
	labels := dropEmpty(map[string]string{
		"reason": ev.Reason,
		"type":   ev.Type,
		// The involved object's kind: `kind` is the event's own ("k8s",
		// which policies and SLOs match on, kind="k8s"); labelled kind,
		// a Pod's event was kind="Pod", and no kind="k8s" rule matched it.
		"object_kind": obj.Kind,
		"namespace":   ns,
		"name":        obj.Name,
		"component":   firstNonEmpty(ev.Source.Component, ev.ReportingController),
		"host":        ev.Source.Host,
		"message":     truncate(msg, 1024),
	})
	if obj.Kind == "Pod" {
		labels["pod"] = obj.Name
	}
	if c := containerFromFieldPath(obj.FieldPath); c != "" {
		labels["container"] = c
	}
	labels["count"] = fmt.Sprint(count)
	// An event object is updated in place as it repeats (count grows): each
	// (uid, count) is a distinct occurrence, a re-send of the same is not.
	id := fmt.Sprintf("%s/%d", ev.Metadata.UID, count)
	env := newEnvelope(req, SourceK8s, "k8s|"+id)
	env.Payload = &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{
		Kind: "k8s", Id: id, Time: timestamppb.New(t), Labels: labels, Raw: append([]byte(nil), raw...),
	}}
	return env, nil
}

func kubeEventer(req *request, raw []byte) (*klaxonv1.Envelope, error) {
	var kb kubeEventerBody
	if err := decodeJSON(raw, &kb); err != nil {
		return nil, err
	}
	if kb.EventReason == "" {
		return nil, badInput(`field "EventReason": required`)
	}
	t := req.now
	if ts, err := time.Parse(time.RFC3339Nano, kb.EventTime); err == nil {
		t = ts
	} else if ts, err := time.Parse("2006-01-02 15:04:05 -0700 MST", kb.EventTime); err == nil {
		t = ts // Go's default time formatting, which kube-eventer's template produces
	}
	labels := dropEmpty(map[string]string{
		"reason": kb.EventReason, "type": kb.EventType, "object_kind": kb.EventKind, "name": kb.EventObject,
		"namespace": kb.EventNamespace, "message": truncate(kb.EventMessage, 1024),
	})
	if kb.EventKind == "Pod" {
		labels["pod"] = kb.EventObject
	}
	// No uid in this body: the whole body (which includes the time) is the identity.
	id := EnvelopeID("", "", string(raw))
	env := newEnvelope(req, SourceK8s, "k8s|"+id)
	env.Payload = &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{
		Kind: "k8s", Id: id, Time: timestamppb.New(t), Labels: labels, Raw: append([]byte(nil), raw...),
	}}
	return env, nil
}

func containerFromFieldPath(fp string) string {
	// spec.containers{name}
	if i := strings.Index(fp, "{"); i >= 0 && strings.HasSuffix(fp, "}") {
		return fp[i+1 : len(fp)-1]
	}
	return ""
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

func (rc *Receiver) k8sEvents(_ context.Context, req *request) (*result, error) {
	envs, err := parseK8sEvents(req, req.body)
	if err != nil {
		return nil, err
	}
	return &result{envelopes: envs}, nil
}
