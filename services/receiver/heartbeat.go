package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// heartbeat accepts an empty body, any JSON object (kept raw, e.g. an
// Alertmanager Watchdog webhook) from cron jobs and watchdogs.
func (rc *Receiver) heartbeat(_ context.Context, req *request) (*result, error) {
	name := req.PathValue("name")
	if !nameRE.MatchString(name) {
		return nil, badInput("heartbeat name %q must match %s", name, nameRE.String())
	}
	if err := rc.known(req, "heartbeat", name); err != nil {
		return nil, err
	}
	body := bytes.TrimSpace(req.body)
	if len(body) > 0 {
		var v any
		if err := decodeJSON(body, &v); err != nil {
			return nil, err
		}
	}
	// Each beat is its own occurrence: the receive time (ns) is its identity.
	id := name + "@" + req.now.UTC().Format(time.RFC3339Nano)
	env := newEnvelope(req, SourceHeartbeat, "hb|"+id)
	env.Payload = &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{
		Kind: "heartbeat", Id: id, Name: name, Time: timestamppb.New(req.now), Raw: append([]byte(nil), body...),
	}}
	return &result{envelopes: []*klaxonv1.Envelope{env}}, nil
}

type sloCounts struct {
	Time  *time.Time `json:"time"`
	Good  *int64     `json:"good"`
	Total *int64     `json:"total"`
	// ID lets a sender make retries idempotent; without it every POST counts.
	ID string `json:"id"`
}

func (rc *Receiver) sloEvents(_ context.Context, req *request) (*result, error) {
	name := req.PathValue("name")
	if !nameRE.MatchString(name) {
		return nil, badInput("SLO name %q must match %s", name, nameRE.String())
	}
	if err := rc.known(req, "slo", name); err != nil {
		return nil, err
	}
	var c sloCounts
	if err := decodeJSON(req.body, &c); err != nil {
		return nil, err
	}
	switch {
	case c.Total == nil:
		return nil, badInput(`field "total": required`)
	case c.Good == nil:
		return nil, badInput(`field "good": required`)
	case *c.Total < 0:
		return nil, badInput(`field "total": must be >= 0`)
	case *c.Good < 0:
		return nil, badInput(`field "good": must be >= 0`)
	case *c.Good > *c.Total:
		return nil, badInput(`field "good": must not exceed "total"`)
	}
	t := req.now
	if c.Time != nil {
		t = *c.Time
		if err := storableTime("time", t); err != nil {
			return nil, err
		}
	}
	id := c.ID
	if id == "" {
		raw, _ := json.Marshal(c)
		id = req.now.UTC().Format(time.RFC3339Nano) + string(raw)
	}
	env := newEnvelope(req, SourceSLO, "slo|"+name+"|"+id)
	env.Payload = &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{
		Kind: "slo", Id: id, Name: name, Time: timestamppb.New(t), Good: *c.Good, Total: *c.Total,
	}}
	return &result{envelopes: []*klaxonv1.Envelope{env}, status: 202}, nil
}

// known answers 404 for a heartbeat or SLO the tenant's rules do not define
// or that takes no beats or counts (Config.Known).
func (rc *Receiver) known(req *request, kind, name string) error {
	if rc.cfg.Known == nil {
		return nil
	}
	if err := rc.cfg.Known(req.tenant, kind, name); err != nil {
		return &statusError{status: http.StatusNotFound, msg: err.Error()}
	}
	return nil
}
