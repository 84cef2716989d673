// Package policy counts occurrences of matching alerts and events per key
// over sliding windows ("more than 3 restarts in 15 minutes") and emits
// derived alerts while a count is above its threshold. Derived alerts are
// published back to the INGEST stream, so they enter the route tree,
// silences and inhibition like any other alert.
package policy

import (
	"encoding/binary"
	"errors"
	"sort"
	"time"
)

// Occurrence is one counted thing: an alert (fingerprint+startsAt) or an
// event (its own id), at the time it happened.
type Occurrence struct {
	At time.Time
	ID uint64 // hash of the occurrence identity
}

// Window is the state of one key of one policy. It keeps only the newest
// threshold+1 occurrences: that is all "count in window > threshold" needs,
// so memory per key is bounded whatever the rate.
type Window struct {
	// Recent holds the newest occurrences, oldest first, at most threshold+1.
	Recent []Occurrence
	// FiringSince is when the derived alert started firing (zero: not firing).
	FiringSince time.Time
	// Total counts distinct occurrences ever added to this key (for the
	// derived alert's annotations).
	Total uint64
}

// Add records o. It returns false when o changes nothing: a duplicate (same
// id already kept) or an occurrence older than every kept one when the list
// is full (it cannot change whether the newest threshold+1 fit in a window).
func (w *Window) Add(o Occurrence, threshold int) bool {
	max := threshold + 1
	for _, r := range w.Recent {
		if r.ID == o.ID {
			return false
		}
	}
	if len(w.Recent) >= max && !o.At.After(w.Recent[0].At) {
		return false
	}
	i := sort.Search(len(w.Recent), func(i int) bool { return w.Recent[i].At.After(o.At) })
	w.Recent = append(w.Recent, Occurrence{})
	copy(w.Recent[i+1:], w.Recent[i:])
	w.Recent[i] = o
	if len(w.Recent) > max {
		w.Recent = append(w.Recent[:0], w.Recent[len(w.Recent)-max:]...)
	}
	w.Total++
	return true
}

// Above reports whether more than threshold occurrences lie in the window
// (now-window, now]: an occurrence exactly `window` old has left it.
func (w *Window) Above(now time.Time, threshold int, window time.Duration) bool {
	if len(w.Recent) < threshold+1 {
		return false
	}
	oldest := w.Recent[len(w.Recent)-threshold-1]
	return oldest.At.After(now.Add(-window)) && !oldest.At.After(now)
}

// CountIn returns how many kept occurrences lie in (now-window, now]. While
// firing it is threshold+1: "more than threshold".
func (w *Window) CountIn(now time.Time, window time.Duration) int {
	n := 0
	for _, r := range w.Recent {
		if r.At.After(now.Add(-window)) && !r.At.After(now) {
			n++
		}
	}
	return n
}

// ResolvesAt is when the count falls back to the threshold unless new
// occurrences arrive: when the oldest of the newest threshold+1 leaves.
func (w *Window) ResolvesAt(threshold int, window time.Duration) time.Time {
	if len(w.Recent) < threshold+1 {
		return time.Time{}
	}
	return w.Recent[len(w.Recent)-threshold-1].At.Add(window)
}

// First and Last are the oldest and newest kept occurrence times.
func (w *Window) First() time.Time {
	if len(w.Recent) == 0 {
		return time.Time{}
	}
	return w.Recent[0].At
}

// Last is the newest kept occurrence time.
func (w *Window) Last() time.Time {
	if len(w.Recent) == 0 {
		return time.Time{}
	}
	return w.Recent[len(w.Recent)-1].At
}

const windowVersion = 1

// MarshalBinary encodes the window compactly (varints): ~10 bytes per kept
// occurrence plus a few header bytes.
func (w *Window) MarshalBinary() ([]byte, error) {
	buf := make([]byte, 0, 16+len(w.Recent)*18)
	buf = append(buf, windowVersion)
	buf = binary.AppendUvarint(buf, w.Total)
	buf = binary.AppendVarint(buf, unixNano(w.FiringSince))
	buf = binary.AppendUvarint(buf, uint64(len(w.Recent)))
	var prev int64
	for _, r := range w.Recent {
		t := r.At.UnixNano()
		buf = binary.AppendVarint(buf, t-prev)
		prev = t
		buf = binary.LittleEndian.AppendUint64(buf, r.ID)
	}
	return buf, nil
}

var errCorrupt = errors.New("policy window: corrupt state")

// UnmarshalBinary decodes what MarshalBinary wrote; any other input is an
// error, never a panic.
func (w *Window) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || b[0] != windowVersion {
		return errCorrupt
	}
	b = b[1:]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	nextSigned := func() (int64, bool) {
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	total, ok1 := next()
	firing, ok2 := nextSigned()
	n, ok3 := next()
	if !ok1 || !ok2 || !ok3 || n > 1<<16 {
		return errCorrupt
	}
	*w = Window{Total: total, FiringSince: fromUnixNano(firing), Recent: make([]Occurrence, 0, n)}
	var prev int64
	for i := uint64(0); i < n; i++ {
		d, ok := nextSigned()
		if !ok || len(b) < 8 {
			return errCorrupt
		}
		prev += d
		w.Recent = append(w.Recent, Occurrence{At: time.Unix(0, prev).UTC(), ID: binary.LittleEndian.Uint64(b)})
		b = b[8:]
	}
	if len(b) != 0 {
		return errCorrupt
	}
	return nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
