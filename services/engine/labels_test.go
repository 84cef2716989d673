package engine

import (
	"encoding/json"
	"maps"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/prometheus/common/model"
)

// Packed labels must behave exactly like the map they replace: same pairs,
// same JSON bytes (stored groups keep their format), same Alertmanager
// string and fingerprint.
func TestLabelsActLikeTheirMap(t *testing.T) {
	for _, m := range []map[string]string{
		nil,
		{"alertname": "DiskFull"},
		{"alertname": "DiskFull", "instance": "db-1:9100", "job": "node", "": "empty name", "e": ""},
		{"html": "<b>&amp;</b>", "quote": `say "hi"\n`, "ctl": "a\x00b\tc", "utf8": "héllo – 日本", "long": string(make([]byte, 300))},
		{"bad-utf8": "\xff\xfe", "sep": "\u2028\u2029"},
	} {
		l := LabelsFromMap(m)
		want := map[string]string{}
		maps.Copy(want, m)
		if got := l.Map(); !maps.Equal(got, want) {
			t.Errorf("Map() = %v, want %v", got, want)
		}
		if n := len(l.Map()); n != len(m) {
			t.Errorf("%d pairs, want %d", n, len(m))
		}
		for k, v := range m {
			if l.Get(k) != v {
				t.Errorf("Get(%q) = %q, want %q", k, l.Get(k), v)
			}
		}
		if l.Get("absent") != "" {
			t.Errorf("Get of an absent name = %q", l.Get("absent"))
		}
		wantJSON, _ := json.Marshal(want)
		for name, marshal := range map[string]func(any) ([]byte, error){"encoding/json": json.Marshal, "goccy": gojson.Marshal} {
			got, err := marshal(l)
			if err != nil || string(got) != string(wantJSON) {
				t.Errorf("%s: MarshalJSON = %s, %v; want %s", name, got, err, wantJSON)
			}
		}
		var back Labels
		var backMap map[string]string // what the map itself reads back (U+FFFD for bad UTF-8)
		_ = json.Unmarshal(wantJSON, &backMap)
		if err := json.Unmarshal(wantJSON, &back); err != nil || back != LabelsFromMap(backMap) {
			t.Errorf("UnmarshalJSON(%s) = %v, %v", wantJSON, back.Map(), err)
		}
		if l.String() != labelSetOf(want).String() || l.LabelSet().Fingerprint() != labelSetOf(want).Fingerprint() {
			t.Errorf("String() = %s, want %s", l.String(), labelSetOf(want).String())
		}
	}
}

func TestLabelsFilterKeepsOrder(t *testing.T) {
	l := LabelsFromMap(map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"})
	got := l.Filter(func(n string) bool { return n == "d" || n == "b" })
	if got != LabelsFromMap(map[string]string{"b": "2", "d": "4"}) {
		t.Fatalf("Filter = %v", got.Map())
	}
	if l.Filter(func(string) bool { return false }) != (Labels{}) {
		t.Fatal("Filter of nothing is not the empty set")
	}
}

func TestLabelsUnmarshalRejectsNonStrings(t *testing.T) {
	var l Labels
	for _, in := range []string{`{"a":1}`, `[]`, `"x"`, `{"a":`} {
		if err := json.Unmarshal([]byte(in), &l); err == nil {
			t.Errorf("UnmarshalJSON(%s) succeeded", in)
		}
	}
	if err := json.Unmarshal([]byte(`null`), &l); err != nil || l != (Labels{}) {
		t.Errorf("null: %v, %v", l.Map(), err)
	}
}

// Any map packs and unpacks to itself, and encodes to encoding/json's bytes.
func FuzzLabels(f *testing.F) {
	f.Add("alertname", "DiskFull", "instance", "<db-1>")
	f.Add("", "", "\xff", "\u2028")
	f.Add("a", "x", "a1", `"q"`) // a name that prefixes another
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		m := map[string]string{k1: v1, k2: v2}
		l := LabelsFromMap(m)
		if got := l.Map(); !maps.Equal(got, m) {
			t.Fatalf("Map() = %q, want %q", got, m)
		}
		want, _ := json.Marshal(m)
		if got, _ := l.MarshalJSON(); string(got) != string(want) {
			t.Fatalf("MarshalJSON = %s, want %s", got, want)
		}
		// Group ids and keys, stored and sent as Alertmanager's group
		// key, render label sets as model.LabelSet does.
		if got, want := l.String(), labelSetOf(m).String(); got != want {
			t.Fatalf("String() = %s, want %s", got, want)
		}
		// The route cache's key, and Alertmanager's alert fingerprint.
		if got, want := l.Fingerprint(), labelSetOf(m).Fingerprint(); got != want {
			t.Fatalf("Fingerprint() = %s, want %s", got, want)
		}
		if got, want := (Labels{}).Fingerprint(), (model.LabelSet{}).Fingerprint(); got != want {
			t.Fatalf("empty Fingerprint() = %s, want %s", got, want)
		}
	})
}

// Group ids, keys and labels are quoted in stored groups as encoding/json
// quotes them.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `{}:{alertname="A"}`, `a\b<c>&d`, "tab\there", "\u2028", "\xff", "\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got[1:], want)
		}
	})
}

// Alerts of a notification are ordered as Alertmanager orders them
// (model.LabelSet.Before after job and instance).
func FuzzLabelsBefore(f *testing.F) {
	f.Add("alertname", "A", "instance", "b", "job", "c")
	f.Add("a", "", "b", "", "a", "")
	f.Add("a", "x", "a1", "y", "b", "x")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		sets := []map[string]string{
			{k1: v1, k2: v2},
			{k1: v2, k3: v3},
			{k2: v1},
			{k1: v1, k2: v2, k3: v3},
			{},
		}
		for _, a := range sets {
			for _, b := range sets {
				want := labelSetOf(a).Before(labelSetOf(b))
				if got := LabelsFromMap(a).Before(LabelsFromMap(b)); got != want {
					t.Fatalf("%q before %q: %v, want %v", a, b, got, want)
				}
			}
		}
	})
}

func labelSetOf(m map[string]string) model.LabelSet {
	ls := model.LabelSet{}
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}

// fromProto fingerprints with model.LabelsToSignature: it must be
// Alertmanager's fingerprint of the label set.
func TestFingerprintIsAlertmanagers(t *testing.T) {
	for _, m := range []map[string]string{nil, {"a": "1"}, {"alertname": "X", "a1": "y", "a": "z", "": "e"}} {
		if got, want := model.Fingerprint(model.LabelsToSignature(m)), labelSetOf(m).Fingerprint(); got != want {
			t.Errorf("%v: %v, want %v", m, got, want)
		}
	}
}

// An Instant stores what a time.Time held and encodes to the same JSON
// (in UTC), so stored groups read back unchanged.
func TestInstantActsLikeTime(t *testing.T) {
	for _, tt := range []time.Time{{}, time.Date(2026, 1, 5, 10, 0, 0, 123456789, time.UTC), time.Date(2026, 1, 5, 11, 0, 0, 0, time.FixedZone("x", 3600))} {
		i := At(tt)
		if !i.Time().Equal(tt) || i.IsZero() != tt.IsZero() {
			t.Errorf("%v: back as %v", tt, i.Time())
		}
		want, _ := json.Marshal(tt.UTC())
		if tt.IsZero() {
			want, _ = json.Marshal(tt)
		}
		got, err := json.Marshal(i)
		if err != nil || string(got) != string(want) {
			t.Errorf("%v: JSON %s, want %s", tt, got, want)
		}
		var back Instant
		if err := json.Unmarshal(got, &back); err != nil || back != i {
			t.Errorf("%s read back as %v, %v", got, back.Time(), err)
		}
	}
	a, b := At(time.Unix(1, 0)), At(time.Unix(2, 0))
	if !a.Before(b) || !b.After(a) || a.After(b) {
		t.Error("Before/After disagree with time")
	}
}
