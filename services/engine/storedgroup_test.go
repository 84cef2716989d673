package engine

import (
	"encoding/json"
	"testing"
)

// The stored value still carries the group's id and key, which readers of
// the bucket (the APIs, engines of the previous version in a rolling
// upgrade) use, and a value stored before RouteKey existed decodes to the
// same key.
func TestStoredGroupKeepsIDAndKey(t *testing.T) {
	labels := LabelsFromMap(map[string]string{"alertname": "DiskFull", "instance": "a:9100"})
	for _, tc := range []struct{ routeID, routeKey, id, key string }{
		{"{}", "{}", `{}:{alertname="DiskFull", instance="a:9100"}`, `{}:{alertname="DiskFull", instance="a:9100"}`},
		{`{}/{team="db"}/0`, `{}/{team="db"}`, `{}/{team="db"}/0:{alertname="DiskFull", instance="a:9100"}`, `{}/{team="db"}:{alertname="DiskFull", instance="a:9100"}`},
	} {
		g := &GroupState{Tenant: "t", RouteID: tc.routeID, RouteKey: tc.routeKey, Receiver: "r", Labels: labels}
		data, err := encodeGroup(g)
		if err != nil {
			t.Fatal(err)
		}
		var stored struct{ ID, Key string }
		if err := json.Unmarshal(data, &stored); err != nil || stored.ID != tc.id || stored.Key != tc.key {
			t.Errorf("stored id %q key %q (%v), want %q and %q", stored.ID, stored.Key, err, tc.id, tc.key)
		}

		old := []byte(`{"tenant":"t","id":` + quote(tc.id) + `,"key":` + quote(tc.key) + `,"route":` + quote(tc.routeID) +
			`,"receiver":"r","labels":{"alertname":"DiskFull","instance":"a:9100"},"alerts":{},"next":"2026-01-05T10:00:30Z"}`)
		var back GroupState
		if err := decodeGroup(old, &back); err != nil {
			t.Fatal(err)
		}
		if back.RouteKey != tc.routeKey || back.Key() != tc.key || back.ID() != tc.id {
			t.Errorf("old value decoded to route key %q, key %q, id %q", back.RouteKey, back.Key(), back.ID())
		}
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }
