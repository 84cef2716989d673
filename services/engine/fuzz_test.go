package engine

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
)

// A group's stored value is input like any other: whatever bytes are in the
// bucket (a corrupt value, an older format), decoding must not panic, and
// what decodes must encode and decode back to the same. (Text that is not
// UTF-8 comes back as U+FFFD: stable from the first round trip on.)
func FuzzGroupStateDecode(f *testing.F) {
	f.Add([]byte(`{"tenant":"t","id":"{}:{a=\"1\"}","key":"{}:{a=\"1\"}","route":"{}","receiver":"r","labels":{"a":"1"},` +
		`"alerts":{"fp1":{"fp":"fp1","labels":{"a":"1"},"annotations":{"s":"x"},"startsAt":"2026-01-05T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","updatedAt":"2026-01-05T10:00:00Z","seq":7}},` +
		`"next":"2026-01-05T10:00:30Z","nflog":{"firing":["fp1"],"resolved":null,"at":"2026-01-05T10:00:00Z","sent":"k","sentAt":"2026-01-05T10:00:00Z"},"pending":"AAE="}`))
	f.Add([]byte(`{"alerts":{"a":null,"b":{}},"labels":null}`))
	f.Add([]byte(`{"tenant":"t<&>","route":"{}/{a=\"x\"}/0","routeKey":"{}/{a=\"x\"}","labels":{"a":"x\u2028\u00e9"},"flushed":true,` +
		`"alerts":{"f1":{"fp":"f1","generatorURL":"http://x/?a=1&b=<2>","timeout":true,"startsAt":"1960-01-02T03:04:05.123456789+02:00"},` +
		`"f2":{},"f3":{},"f4":{},"f5":{},"f6":{},"f7":{},"f8":{},"f9":{"labels":{"b":"\ud800"}}},"nflog":{"firing":[],"at":"0001-01-01T00:00:00Z"}}`))
	f.Add([]byte(`{"labels":{"a":1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var g GroupState
		if decodeGroup(data, &g) != nil {
			return
		}
		out, err := encodeGroup(&g)
		if err != nil {
			t.Fatalf("decoded %q but cannot encode it: %v", data, err)
		}
		// The hand-written encoder writes what goccy/go-json writes for the
		// stored struct, value for value (a control character may be
		// escaped differently).
		want, err := gojson.Marshal(storedGroup{ID: g.ID(), Key: g.Key(), groupFields: groupFields(g)})
		var got, wantV any
		if err != nil || json.Unmarshal(out, &got) != nil || json.Unmarshal(want, &wantV) != nil || !reflect.DeepEqual(got, wantV) {
			t.Fatalf("encodeGroup:\n%s\ngoccy (%v):\n%s", out, err, want)
		}
		// AlertSet marshals with the same appender, so each alert is also
		// held to goccy's encoding of the struct.
		for _, a := range g.Alerts.All() {
			want, err := gojson.Marshal(a)
			var got, wantV any
			if err != nil || json.Unmarshal(a.appendJSON(nil), &got) != nil || json.Unmarshal(want, &wantV) != nil || !reflect.DeepEqual(got, wantV) {
				t.Fatalf("alert:\n%s\ngoccy (%v):\n%s", a.appendJSON(nil), err, want)
			}
		}
		var back GroupState
		if err := decodeGroup(out, &back); err != nil {
			t.Fatalf("cannot decode own encoding %s: %v", out, err)
		}
		again, _ := encodeGroup(&back)
		if utf8.Valid(data) && !bytes.Equal(out, again) {
			t.Fatalf("encoding not stable:\n%s\n%s", out, again)
		}
	})
}
