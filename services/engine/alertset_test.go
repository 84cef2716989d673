package engine

import (
	"encoding/json"
	"fmt"
	"testing"
)

// An AlertSet answers like the map it replaced, across the switch from its
// small form to its large one and back down in size.
func TestAlertSetActsLikeAMap(t *testing.T) {
	var s AlertSet
	want := map[string]*Alert{}
	check := func(step string) {
		t.Helper()
		if s.Len() != len(want) {
			t.Fatalf("%s: Len() = %d, want %d", step, s.Len(), len(want))
		}
		seen := 0
		for fp, a := range s.All() {
			if want[fp] != a || a.Fingerprint != fp {
				t.Fatalf("%s: All() yielded %s -> %p, want %p", step, fp, a, want[fp])
			}
			seen++
		}
		if seen != len(want) {
			t.Fatalf("%s: All() yielded %d alerts, want %d", step, seen, len(want))
		}
		for fp, a := range want {
			if s.Get(fp) != a {
				t.Fatalf("%s: Get(%s) = %p, want %p", step, fp, s.Get(fp), a)
			}
		}
		if s.Get("absent") != nil {
			t.Fatalf("%s: Get of an absent fingerprint is not nil", step)
		}
		got, err := json.Marshal(s)
		wantJSON, _ := json.Marshal(want)
		if err != nil || string(got) != string(wantJSON) {
			t.Fatalf("%s: JSON %s, %v; want %s", step, got, err, wantJSON)
		}
		var back AlertSet
		if err := json.Unmarshal(got, &back); err != nil || back.Len() != len(want) {
			t.Fatalf("%s: read back %d alerts, %v", step, back.Len(), err)
		}
	}
	for i := range 3 * smallSet {
		a := &Alert{Fingerprint: fmt.Sprintf("%016x", i), Labels: LabelsFromMap(map[string]string{"i": fmt.Sprint(i)})}
		s.Set(a)
		want[a.Fingerprint] = a
		check(fmt.Sprintf("set %d", i))
	}
	// Replacing keeps one entry per fingerprint.
	b := &Alert{Fingerprint: fmt.Sprintf("%016x", 3)}
	s.Set(b)
	want[b.Fingerprint] = b
	check("replace")
	for i := range 3 * smallSet {
		fp := fmt.Sprintf("%016x", i)
		s.Delete(fp)
		delete(want, fp)
		check(fmt.Sprintf("delete %d", i))
	}
	s.Delete("absent")
	check("delete absent")
}

// Small sets replace in place too.
func TestAlertSetSmallReplace(t *testing.T) {
	var s AlertSet
	s.Set(&Alert{Fingerprint: "a"})
	s.Set(&Alert{Fingerprint: "b"})
	c := &Alert{Fingerprint: "a", GeneratorURL: "new"}
	s.Set(c)
	if s.Len() != 2 || s.Get("a") != c {
		t.Fatalf("Len %d, Get(a) %+v", s.Len(), s.Get("a"))
	}
	if err := json.Unmarshal([]byte(`{"a":`), &s); err == nil {
		t.Fatal("truncated JSON accepted")
	}
}
