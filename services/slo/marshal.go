package slo

import (
	"encoding/binary"
	"errors"
	"sort"
	"time"
)

// countersVersion 2 stores each open alert's end; 1 (read still) did not.
const countersVersion = 2

var errCorrupt = errors.New("slo counters: corrupt state")

// ErrNewerFormat is state written by a newer Klaxon (a format version this
// binary does not know): it is not corrupt, and must not be overwritten.
var ErrNewerFormat = errors.New("slo counters: written by a newer Klaxon")

// MarshalBinary encodes the non-empty buckets and open alerts (varints), so
// the stored size follows the data, not the ring sizes.
func (c *Counters) MarshalBinary() ([]byte, error) {
	buf := []byte{countersVersion}
	buf = binary.AppendUvarint(buf, uint64(c.latest))
	buf = binary.AppendUvarint(buf, uint64(c.Dropped))
	var mins []minuteBucket
	var hours []hourBucket
	if c.minutes != nil {
		for _, b := range c.minutes {
			if b.min != 0 && (b.bad != 0 || b.total != 0) {
				mins = append(mins, b)
			}
		}
		for _, b := range c.hours {
			if b.hour != 0 && (b.bad != 0 || b.total != 0) {
				hours = append(hours, b)
			}
		}
	}
	sort.Slice(mins, func(i, j int) bool { return mins[i].min < mins[j].min })
	sort.Slice(hours, func(i, j int) bool { return hours[i].hour < hours[j].hour })
	buf = binary.AppendUvarint(buf, uint64(len(mins)))
	var prev uint32
	for _, b := range mins {
		buf = binary.AppendUvarint(buf, uint64(b.min-prev))
		prev = b.min
		buf = binary.AppendUvarint(buf, uint64(b.bad))
		buf = binary.AppendUvarint(buf, uint64(b.total))
	}
	buf = binary.AppendUvarint(buf, uint64(len(hours)))
	prev = 0
	for _, b := range hours {
		buf = binary.AppendUvarint(buf, uint64(b.hour-prev))
		prev = b.hour
		buf = binary.AppendUvarint(buf, uint64(b.bad))
		buf = binary.AppendUvarint(buf, uint64(b.total))
	}
	fps := make([]string, 0, len(c.open))
	for fp := range c.open {
		fps = append(fps, fp)
	}
	sort.Strings(fps)
	buf = binary.AppendUvarint(buf, uint64(len(fps)))
	for _, fp := range fps {
		o := c.open[fp]
		buf = binary.AppendUvarint(buf, uint64(len(fp)))
		buf = append(buf, fp...)
		buf = binary.AppendVarint(buf, o.start.UnixNano())
		var end int64 // zero time: 0
		if !o.end.IsZero() {
			end = o.end.UnixNano()
		}
		buf = binary.AppendVarint(buf, end)
		buf = binary.AppendUvarint(buf, uint64(o.marked))
	}
	return buf, nil
}

// UnmarshalBinary restores what MarshalBinary wrote; any other input is an
// error, never a panic.
func (c *Counters) UnmarshalBinary(b []byte) error {
	// A few versions ahead are a newer Klaxon's; a byte beyond is corruption.
	if len(b) > 0 && b[0] > countersVersion && b[0] <= countersVersion+8 {
		return ErrNewerFormat
	}
	if len(b) == 0 || (b[0] != countersVersion && b[0] != 1) {
		return errCorrupt
	}
	version := b[0]
	b = b[1:]
	bad := false
	u := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	fresh := Counters{}
	fresh.init()
	fresh.latest = uint32(u())
	fresh.Dropped = int64(u())
	n := u()
	if n > minuteSlots {
		return errCorrupt
	}
	var prev uint64
	for i := uint64(0); i < n && !bad; i++ {
		prev += u()
		m := uint32(prev)
		// Varints: state written when minute counts were 32-bit reads the same.
		fresh.minutes[m%minuteSlots] = minuteBucket{min: m, bad: int64(u()), total: int64(u())}
	}
	n = u()
	if n > hourSlots {
		return errCorrupt
	}
	prev = 0
	for i := uint64(0); i < n && !bad; i++ {
		prev += u()
		h := uint32(prev)
		fresh.hours[h%hourSlots] = hourBucket{hour: h, bad: int64(u()), total: int64(u())}
	}
	n = u()
	if n > 1<<20 {
		return errCorrupt
	}
	for i := uint64(0); i < n && !bad; i++ {
		l := u()
		if bad || l > uint64(len(b)) {
			return errCorrupt
		}
		fp := string(b[:l])
		b = b[l:]
		v, k := binary.Varint(b)
		if k <= 0 {
			return errCorrupt
		}
		b = b[k:]
		o := openAlert{start: time.Unix(0, v).UTC()}
		if version >= 2 {
			e, k := binary.Varint(b)
			if k <= 0 {
				return errCorrupt
			}
			b = b[k:]
			if e != 0 {
				o.end = time.Unix(0, e).UTC()
			}
		}
		o.marked = uint32(u())
		fresh.open[fp] = o
	}
	if bad || len(b) != 0 {
		return errCorrupt
	}
	*c = fresh
	return nil
}
