package runner

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// A record stored before ids had times (a plain list of at most 256) loads,
// its ids still deduplicated for a window from the load; ids are kept for
// the window and no longer, and never more than maxSeenIDs, each one
// forgotten early reported; pending burn alerts survive a store and load.
func TestRecordIDsAcrossFormatsAndBounds(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	old := &record{firing: map[int]time.Time{}}
	cb, _ := old.counters.MarshalBinary()
	legacy := binary.AppendUvarint(nil, uint64(len(cb)))
	legacy = append(legacy, cb...)
	legacy = binary.AppendUvarint(legacy, 0) // no firing rules
	legacy = binary.AppendUvarint(legacy, 2)
	legacy = binary.LittleEndian.AppendUint64(legacy, 7)
	legacy = binary.LittleEndian.AppendUint64(legacy, 8)
	var r record
	if err := r.unmarshal(legacy, t0); err != nil {
		t.Fatal(err)
	}
	if dup, _ := r.seen(7, t0.Add(9*time.Minute)); !dup {
		t.Fatal("an id of a record in the old format is not deduplicated after loading")
	}

	var back record
	if err := back.unmarshal(r.marshal(), t0); err != nil {
		t.Fatal(err)
	}
	if dup, _ := back.seen(8, t0.Add(9*time.Minute)); !dup {
		t.Fatal("an id is not deduplicated after a store and load")
	}
	// An event counted before an engine crash, redelivered when the engine
	// came back a quarter of an hour later, is not counted again.
	if dup, _ := back.seen(8, t0.Add(15*time.Minute)); !dup {
		t.Fatal("an id is forgotten after 15 minutes")
	}

	// The bound pushes out the oldest; only those younger than the dedup
	// window count as forgotten (7 and 8 were counted at t0).
	forgotten := 0
	for i := range maxSeenIDs + 10 {
		_, n := back.seen(uint64(1000+i), t0.Add(12*time.Minute))
		forgotten += n
	}
	if len(back.recent) != maxSeenIDs || forgotten != 10 {
		t.Fatalf("%d ids kept, %d forgotten; want %d and 10", len(back.recent), forgotten, maxSeenIDs)
	}
	if n := len(back.marshal()); n > 150<<10 {
		t.Fatalf("a full id list is %d bytes stored", n)
	}

	back.pending = [][]byte{[]byte("resolve"), []byte("re-send")}
	var withPending record
	if err := withPending.unmarshal(back.marshal(), t0); err != nil {
		t.Fatal(err)
	}
	if len(withPending.pending) != 2 || string(withPending.pending[0]) != "resolve" || len(withPending.recent) != maxSeenIDs {
		t.Fatalf("pending alerts %q, %d ids after a store and load", withPending.pending, len(withPending.recent))
	}
}

// A record with more ids than this binary's bound (one written by a build
// that kept more) loads with the latest ids, not as corrupt: a corrupt
// record starts the SLO's counters over.
func TestRecordWithMoreIDsThanTheBoundLoads(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	r := &record{firing: map[int]time.Time{}}
	r.counters.AddRatio(t0, 4, 5)
	for i := range maxSeenIDs + 904 {
		r.recent = append(r.recent, seenID{id: uint64(i), at: t0.Unix()})
	}
	var back record
	if err := back.unmarshal(r.marshal(), t0); err != nil {
		t.Fatalf("a record with %d ids: %v", len(r.recent), err)
	}
	if len(back.recent) != maxSeenIDs || back.recent[0].id != 904 {
		t.Fatalf("%d ids loaded, oldest %d; want the latest %d", len(back.recent), back.recent[0].id, maxSeenIDs)
	}
	if dup, _ := back.seen(uint64(maxSeenIDs+903), t0); !dup {
		t.Fatal("the latest id is not remembered")
	}
}

// A record whose id list carries a later format's marker is newer, not
// corrupt.
func TestRecordOfALaterFormatIsNewer(t *testing.T) {
	r := &record{firing: map[int]time.Time{}}
	cb, _ := r.counters.MarshalBinary()
	b := binary.AppendUvarint(nil, uint64(len(cb)))
	b = append(b, cb...)
	b = binary.AppendUvarint(b, 0)          // no firing rules
	b = binary.AppendUvarint(b, timedIDs+1) // the next format's marker
	var back record
	if err := back.unmarshal(b, time.Now()); !errors.Is(err, errNewer) {
		t.Fatalf("later format: %v, want errNewer", err)
	}
	// A marker far beyond is corruption (a corrupt record starts over; one
	// taken for newer would be left, uncounted, for ever).
	b = binary.AppendUvarint(b[:len(b)-binary.PutUvarint(make([]byte, 10), timedIDs+1)], timedIDs<<1)
	if err := back.unmarshal(b, time.Now()); !errors.Is(err, errCorrupt) {
		t.Fatalf("marker far beyond: %v, want errCorrupt", err)
	}
}

// FuzzRecordUnmarshal: no stored value makes loading an SLO's record panic,
// and a record that loads is written back to one that loads the same.
func FuzzRecordUnmarshal(f *testing.F) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	r := &record{firing: map[int]time.Time{0: t0}, pending: [][]byte{[]byte("p")}}
	r.counters.AddRatio(t0, 4, 5)
	r.recent = []seenID{{id: 7, at: t0.Unix()}}
	f.Add(r.marshal())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got record
		if got.unmarshal(b, t0) != nil {
			return
		}
		var again record
		if err := again.unmarshal(got.marshal(), t0); err != nil {
			t.Fatalf("a loaded record written back does not load: %v", err)
		}
		if len(again.recent) != len(got.recent) || len(again.pending) != len(got.pending) || len(again.firing) != len(got.firing) {
			t.Fatalf("written back: %d ids, %d pending, %d firing; loaded %d, %d, %d",
				len(again.recent), len(again.pending), len(again.firing), len(got.recent), len(got.pending), len(got.firing))
		}
	})
}
