package policy

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func occ(offset time.Duration, id uint64) Occurrence { return Occurrence{At: t0.Add(offset), ID: id} }

func TestWindowThresholdAndBoundary(t *testing.T) {
	const threshold = 3
	window := 15 * time.Minute
	var w Window
	for i, off := range []time.Duration{0, 5 * time.Minute, 10 * time.Minute} {
		w.Add(occ(off, uint64(i)), threshold)
	}
	if w.Above(t0.Add(10*time.Minute), threshold, window) {
		t.Fatal("3 occurrences are not more than 3")
	}
	w.Add(occ(14*time.Minute, 3), threshold)
	if !w.Above(t0.Add(14*time.Minute), threshold, window) {
		t.Fatal("4 occurrences in 15m must fire")
	}
	// The first occurrence leaves the window exactly 15m after it happened.
	if !w.Above(t0.Add(15*time.Minute-time.Nanosecond), threshold, window) {
		t.Fatal("still 4 in the window a nanosecond before the boundary")
	}
	if w.Above(t0.Add(15*time.Minute), threshold, window) {
		t.Fatal("an occurrence exactly one window old has left it")
	}
	if got := w.ResolvesAt(threshold, window); !got.Equal(t0.Add(15 * time.Minute)) {
		t.Fatalf("ResolvesAt %v", got)
	}
}

func TestWindowDuplicatesCountOnce(t *testing.T) {
	var w Window
	if !w.Add(occ(0, 7), 3) {
		t.Fatal("first add")
	}
	for i := 0; i < 5; i++ {
		if w.Add(occ(0, 7), 3) {
			t.Fatal("a re-sent occurrence counted again")
		}
	}
	if len(w.Recent) != 1 || w.Total != 1 {
		t.Fatalf("recent %d total %d", len(w.Recent), w.Total)
	}
}

func TestWindowOutOfOrder(t *testing.T) {
	var w Window
	for i, off := range []time.Duration{10 * time.Minute, 2 * time.Minute, 14 * time.Minute, 6 * time.Minute} {
		w.Add(occ(off, uint64(i)), 3)
	}
	for i := 1; i < len(w.Recent); i++ {
		if w.Recent[i].At.Before(w.Recent[i-1].At) {
			t.Fatalf("not ordered by occurrence time: %v", w.Recent)
		}
	}
	if !w.Above(t0.Add(14*time.Minute), 3, 15*time.Minute) {
		t.Fatal("4 out-of-order occurrences within 15m must fire")
	}
}

func TestWindowMemoryIsBounded(t *testing.T) {
	var w Window
	for i := 0; i < 10000; i++ {
		w.Add(occ(time.Duration(i)*time.Second, uint64(i)), 3)
	}
	if len(w.Recent) != 4 {
		t.Fatalf("kept %d occurrences, want threshold+1 = 4", len(w.Recent))
	}
	if !w.Recent[3].At.Equal(t0.Add(9999 * time.Second)) {
		t.Fatal("must keep the newest")
	}
	// An old occurrence cannot change the newest four: ignored.
	if w.Add(occ(time.Second, 1<<40), 3) {
		t.Fatal("an occurrence older than every kept one changed the window")
	}
	b, _ := w.MarshalBinary()
	if len(b) > 100 {
		t.Fatalf("state is %d bytes, want under 100 for threshold 3", len(b))
	}
}

func TestWindowSevenDays(t *testing.T) {
	week := 7 * 24 * time.Hour
	var w Window
	days := []time.Duration{0, 2 * 24 * time.Hour, 4 * 24 * time.Hour, 6*24*time.Hour + 23*time.Hour}
	for i, d := range days {
		w.Add(occ(d, uint64(i)), 3)
	}
	now := t0.Add(days[3])
	if !w.Above(now, 3, week) {
		t.Fatal("4 restarts within 7 days must fire the long-window policy")
	}
	if w.Above(now, 3, 15*time.Minute) {
		t.Fatal("but not the 15-minute one")
	}
	if !w.ResolvesAt(3, week).Equal(t0.Add(week)) {
		t.Fatal("resolves when the first leaves the week")
	}
}

func TestWindowMarshalRoundTrip(t *testing.T) {
	w := Window{FiringSince: t0, Total: 42}
	for i := 0; i < 4; i++ {
		w.Add(occ(time.Duration(i)*time.Minute, uint64(i)*0x9e3779b97f4a7c15), 3)
	}
	b, err := w.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Window
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !got.FiringSince.Equal(w.FiringSince) || got.Total != w.Total+0 || len(got.Recent) != len(w.Recent) {
		t.Fatalf("got %+v want %+v", got, w)
	}
	for i := range w.Recent {
		if !got.Recent[i].At.Equal(w.Recent[i].At) || got.Recent[i].ID != w.Recent[i].ID {
			t.Fatalf("occurrence %d differs", i)
		}
	}
}

func FuzzWindowUnmarshal(f *testing.F) {
	w := Window{FiringSince: t0}
	w.Add(occ(0, 1), 3)
	b, _ := w.MarshalBinary()
	f.Add(b)
	r := record{Window: w, Labels: map[string]string{"pod": "a"}}
	f.Add(r.marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		var w Window
		_ = w.UnmarshalBinary(data)
		var r record
		_ = r.unmarshal(data)
	})
}

// TestWindowBounds: the shortest and the longest window the loader accepts
// (1s and 366d) count and let occurrences leave exactly one window later.
func TestWindowBounds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window time.Duration
		second time.Duration // when the second occurrence comes
	}{
		{"1s", time.Second, 999 * time.Millisecond},
		{"366d", 366 * 24 * time.Hour, 365 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const threshold = 1
			var w Window
			w.Add(occ(0, 1), threshold)
			if w.Above(t0, threshold, tc.window) {
				t.Fatal("one occurrence is not more than one")
			}
			w.Add(occ(tc.second, 2), threshold)
			now := t0.Add(tc.second)
			if !w.Above(now, threshold, tc.window) || w.CountIn(now, tc.window) != 2 {
				t.Fatalf("two occurrences %s apart must fire a %s window (count %d)", tc.second, tc.name, w.CountIn(now, tc.window))
			}
			if !w.Above(t0.Add(tc.window-time.Nanosecond), threshold, tc.window) {
				t.Fatal("still two in the window a nanosecond before the first leaves")
			}
			end := t0.Add(tc.window)
			if w.Above(end, threshold, tc.window) || w.CountIn(end, tc.window) != 1 {
				t.Fatalf("the first occurrence left the window at %s (count %d)", tc.window, w.CountIn(end, tc.window))
			}
			if got := w.ResolvesAt(threshold, tc.window); !got.Equal(end) {
				t.Fatalf("ResolvesAt %v, want %v", got, end)
			}
			// A window never reaches back further than its length.
			if (&Window{Recent: []Occurrence{occ(-tc.window, 3), occ(0, 4)}}).Above(t0, threshold, tc.window) {
				t.Fatal("an occurrence exactly one window old still counted")
			}
		})
	}
}
