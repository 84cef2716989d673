package slo

import (
	"math"
	"time"
)

// Resolutions: per minute for windows up to 7 days, per hour up to 366 days.
// The rings are fixed arrays, allocated on first use: at most
// 10080×24 + 8784×24 bytes ≈ 442 KiB per SLO, whatever the traffic.
const (
	minuteSlots = 7 * 24 * 60
	hourSlots   = 366 * 24
)

type minuteBucket struct {
	min uint32 // unix minute this slot holds (0 = empty)
	// 64 bits, as the hours: one POST may count more than 2^32 events, and
	// 32-bit counts wrapped (4294967396 requests, 100 bad, read as 100 of 100).
	bad, total int64
}

type hourBucket struct {
	hour       uint32 // unix hour this slot holds (0 = empty)
	bad, total int64
}

// Counters hold bad/total counts at two resolutions, and the firing alerts
// of a time-slice SLI.
type Counters struct {
	minutes *[minuteSlots]minuteBucket
	hours   *[hourSlots]hourBucket
	// latest is the newest minute written: the rings hold
	// (latest−slots, latest].
	latest uint32
	// Open firing alerts of a time-slice SLI: fingerprint → start, end, and
	// the minute up to which they are already marked bad.
	open map[string]openAlert
	// Dropped counts data older than the hour ring (366 days).
	Dropped int64
}

type openAlert struct {
	start time.Time
	// end is when the alert resolves unless it is sent again (its endsAt,
	// or resolve_timeout after it was received, as Alertmanager resolves
	// it); zero: only a resolved message closes it (state stored before
	// ends were kept).
	end    time.Time
	marked uint32 // next minute to mark
}

// unixMinute is t's minute since 1970; earlier times are minute 0, which is
// always older than the rings hold (so they are dropped, not wrapped around).
func unixMinute(t time.Time) uint32 {
	u := t.Unix()
	switch {
	case u < 0:
		return 0
	case u/60 > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(u / 60)
}

// reach is the oldest minute the hour ring can still hold when the newest is
// last: marking older minutes only drops them, so loops start here.
func reach(last uint32) uint32 {
	if last > hourSlots*60 {
		return last - hourSlots*60
	}
	return 0
}

func (c *Counters) init() {
	if c.minutes == nil {
		c.minutes = new([minuteSlots]minuteBucket)
		c.hours = new([hourSlots]hourBucket)
		c.open = map[string]openAlert{}
	}
}

// addMinute adds counts to minute m. markOnce (time slices) makes a minute
// count as bad at most once while it is in the minute ring; older late data
// goes to the hour ring only, where a repeat cannot be told apart.
func (c *Counters) addMinute(m uint32, bad, total int64, markOnce bool) {
	c.init()
	if m > c.latest {
		c.latest = m
	}
	if m+minuteSlots > c.latest {
		s := &c.minutes[m%minuteSlots]
		if s.min < m {
			*s = minuteBucket{min: m}
		}
		if s.min == m {
			if markOnce {
				if s.bad > 0 {
					return // already bad: a minute counts once
				}
				s.bad = 1
			} else {
				s.bad += bad
				s.total += total
			}
		}
	}
	c.addHour(m/60, bad, total)
}

func (c *Counters) addHour(h uint32, bad, total int64) {
	if (h+hourSlots)*60 <= c.latest {
		c.Dropped++
		return
	}
	hs := &c.hours[h%hourSlots]
	if hs.hour > h {
		c.Dropped++
		return
	}
	if hs.hour < h {
		*hs = hourBucket{hour: h}
	}
	hs.bad += bad
	hs.total += total
}

// AddRatio records good and total events at t (ratio SLIs).
func (c *Counters) AddRatio(t time.Time, good, total int64) {
	if total <= 0 || good < 0 || good > total {
		return
	}
	c.addMinute(unixMinute(t), total-good, total, false)
}

// Fire records that a matching alert (by fingerprint) fires since start
// until end, unless sent again (time-slice SLIs); each re-send moves end.
// An alert no longer sent (its rule deleted, its sender gone) is closed at
// its end by Observe, as Alertmanager resolves it: kept open, it would mark
// every minute after it bad, and its entry would stay for ever.
func (c *Counters) Fire(fingerprint string, start, end time.Time) {
	c.init()
	if o, ok := c.open[fingerprint]; ok {
		if end.After(o.end) {
			o.end = end
			c.open[fingerprint] = o
		}
		return
	}
	c.open[fingerprint] = openAlert{start: start, end: end, marked: unixMinute(start)}
}

// Resolve marks [start, end) of the alert bad and closes it. An alert seen
// only resolved (its firing was missed) is marked from start too.
func (c *Counters) Resolve(fingerprint string, start, end time.Time) {
	c.init()
	from := unixMinute(start)
	if o, ok := c.open[fingerprint]; ok {
		from = o.marked // earlier minutes are marked already
		delete(c.open, fingerprint)
	}
	last := unixMinute(end.Add(-time.Nanosecond))
	if !end.After(start) {
		last = unixMinute(start)
	}
	for m := max(from, reach(last)); m <= last; m++ {
		c.addMinute(m, 1, 0, true)
	}
}

// Observe marks the minutes of still-firing alerts bad up to now, and
// closes, at their end, those that ended without a resolved message.
func (c *Counters) Observe(now time.Time) {
	c.init()
	nowMin := unixMinute(now)
	for fp, o := range c.open {
		if !o.end.IsZero() && !o.end.After(now) {
			c.Resolve(fp, o.start, o.end)
			continue
		}
		for m := max(o.marked, reach(nowMin)); m <= nowMin; m++ {
			c.addMinute(m, 1, 0, true)
		}
		o.marked = nowMin
		c.open[fp] = o
	}
	if nowMin > c.latest {
		c.latest = nowMin
	}
}

// Firing reports how many matching alerts are open.
func (c *Counters) Firing() int { return len(c.open) }

// sum returns bad and total counts in the minutes [first, last] (inclusive).
// Windows that fit the minute ring use it; longer ones use whole hours.
func (c *Counters) sum(first, last uint32) (bad, total int64) {
	if c.minutes == nil || last < first {
		return 0, 0
	}
	if first+minuteSlots > c.latest {
		for m := first; m <= last; m++ {
			s := &c.minutes[m%minuteSlots]
			if s.min == m {
				bad += s.bad
				total += s.total
			}
		}
		return bad, total
	}
	for h := first / 60; h <= last/60; h++ {
		s := &c.hours[h%hourSlots]
		if s.hour == h {
			bad += s.bad
			total += s.total
		}
	}
	return bad, total
}
