package engine

import (
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"time"
)

// encodeGroup writes a group as stored: its fields, and its id and key,
// which the engine computes but readers of the bucket (the APIs, and
// engines before routeKey during a rolling upgrade) read.
//
// It appends the JSON by hand: every routed alert writes its group at
// least once, and through goccy/go-json, which re-reads the output of each
// Labels, Instant and AlertSet marshaller, encoding was a third of the
// engine's CPU under an alert storm. It writes what goccy writes for
// storedGroup, value for value (FuzzGroupStateDecode holds it to that).
func encodeGroup(g *GroupState) ([]byte, error) {
	b := make([]byte, 0, encodedSize(g))
	b = append(b, `{"id":`...)
	b = appendJSONString(b, g.ID())
	b = append(b, `,"key":`...)
	b = appendJSONString(b, g.Key())
	b = append(b, `,"tenant":`...)
	b = appendJSONString(b, g.Tenant)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, g.RouteID)
	if g.RouteKey != "" {
		b = append(b, `,"routeKey":`...)
		b = appendJSONString(b, g.RouteKey)
	}
	b = append(b, `,"receiver":`...)
	b = appendJSONString(b, g.Receiver)
	b = append(b, `,"labels":`...)
	b = g.Labels.appendJSON(b)
	b = append(b, `,"alerts":`...)
	b = g.Alerts.appendJSON(b)
	b = append(b, `,"next":`...)
	b = g.Next.appendJSON(b)
	if g.Flushed {
		b = append(b, `,"flushed":true`...)
	}
	if n := g.Nflog; n != nil {
		var err error
		if b, err = n.appendJSON(append(b, `,"nflog":`...)); err != nil {
			return nil, err
		}
	}
	if len(g.Pending) > 0 {
		b = append(b, `,"pending":"`...)
		b = base64.StdEncoding.AppendEncode(b, g.Pending)
		b = append(b, '"')
	}
	return append(b, '}'), nil
}

// encodedSize is about the length of g's encoding, a little over as a rule,
// so the buffer is allocated once: packed labels grow by a few quotes and
// colons per label in JSON, and each alert's times, keys and fingerprints
// take about 250 bytes.
func encodedSize(g *GroupState) int {
	n := 320 + len(g.Labels.s)*5/4 + len(g.Pending)*4/3
	if g.Nflog != nil {
		n += 128 + 20*(len(g.Nflog.Firing)+len(g.Nflog.Resolved))
	}
	for _, a := range g.Alerts.All() {
		n += alertBytes(a)
	}
	return n
}

// alertBytes is about what a takes in its group's encoding (see
// encodedSize), without encoding it.
func alertBytes(a *Alert) int {
	return 256 + (len(a.Labels.s)+len(a.Annotations.s))*5/4 + len(a.GeneratorURL)
}

// appendJSON appends what MarshalJSON returns.
func (s AlertSet) appendJSON(b []byte) []byte {
	var arr [8]*Alert // the small form: no allocation to sort
	as := arr[:0]
	for _, a := range s.All() {
		as = append(as, a)
	}
	slices.SortFunc(as, func(a, b *Alert) int { return strings.Compare(a.Fingerprint, b.Fingerprint) })
	b = append(b, '{')
	for i, a := range as {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, a.Fingerprint)
		b = append(b, ':')
		b = a.appendJSON(b)
	}
	return append(b, '}')
}

// appendJSON appends the alert as encoding/json writes its struct
// (TestAlertSetActsLikeAMap and FuzzGroupStateDecode compare).
func (a *Alert) appendJSON(b []byte) []byte {
	b = append(b, `{"fp":`...)
	b = appendJSONString(b, a.Fingerprint)
	b = append(b, `,"labels":`...)
	b = a.Labels.appendJSON(b)
	b = append(b, `,"annotations":`...)
	b = a.Annotations.appendJSON(b)
	b = append(b, `,"startsAt":`...)
	b = a.StartsAt.appendJSON(b)
	b = append(b, `,"endsAt":`...)
	b = a.EndsAt.appendJSON(b)
	if a.GeneratorURL != "" {
		b = append(b, `,"generatorURL":`...)
		b = appendJSONString(b, a.GeneratorURL)
	}
	b = append(b, `,"updatedAt":`...)
	b = a.UpdatedAt.appendJSON(b)
	if a.Timeout {
		b = append(b, `,"timeout":true`...)
	}
	if a.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, a.Seq, 10)
	}
	return append(b, '}')
}

// appendJSON appends what MarshalJSON returns. An Instant is always within
// the years time.Time's MarshalJSON accepts (1677–2262, or year 1 for
// none), so this cannot fail.
func (i Instant) appendJSON(b []byte) []byte {
	b = append(b, '"')
	b = i.Time().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func (n *NflogEntry) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"firing":`...)
	b = appendStrings(b, n.Firing)
	b = append(b, `,"resolved":`...)
	b = appendStrings(b, n.Resolved)
	at, err := n.At.MarshalJSON()
	if err != nil {
		return nil, err
	}
	b = append(append(b, `,"at":`...), at...)
	if n.Sent != "" {
		b = append(b, `,"sent":`...)
		b = appendJSONString(b, n.Sent)
	}
	if n.SentAt != nil {
		at, err := n.SentAt.MarshalJSON()
		if err != nil {
			return nil, err
		}
		b = append(append(b, `,"sentAt":`...), at...)
	}
	return append(b, '}'), nil
}

// appendStrings appends ss as a JSON array (null for nil, as encoding/json).
func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}
