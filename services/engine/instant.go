package engine

import "time"

// Instant is a point in time in Unix nanoseconds, 0 for none. An alert
// held by the engine has three timestamps; as time.Time they take 24 bytes
// each (wall clock, monotonic reading, location), as Instants 8. They
// encode to JSON as time.Time does (RFC 3339, UTC), so stored groups read
// the same. (The instant 1970-01-01T00:00:00Z itself would read as none;
// no alert starts then.)
type Instant int64

// At is t as an Instant (0 for the zero time).
func At(t time.Time) Instant {
	if t.IsZero() {
		return 0
	}
	return Instant(t.UnixNano())
}

// Time is i as a time.Time in UTC (the zero time for 0).
func (i Instant) Time() time.Time {
	if i == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(i)).UTC()
}

// IsZero reports whether i is none.
func (i Instant) IsZero() bool { return i == 0 }

// Before reports whether i is before j.
func (i Instant) Before(j Instant) bool { return i < j }

// After reports whether i is after j.
func (i Instant) After(j Instant) bool { return i > j }

// MarshalJSON writes i as time.Time does.
func (i Instant) MarshalJSON() ([]byte, error) { return i.Time().MarshalJSON() }

// UnmarshalJSON reads what time.Time writes.
func (i *Instant) UnmarshalJSON(b []byte) error {
	var t time.Time
	if err := t.UnmarshalJSON(b); err != nil {
		return err
	}
	*i = At(t)
	return nil
}
