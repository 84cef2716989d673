package slo

import (
	"fmt"
	"math/big"
	"time"
)

// Period of a budget report.
type Period string

// Report periods: the rolling SLO period and the current calendar week
// (Monday first), month and year in the SLO's time zone.
const (
	Rolling Period = "rolling"
	Week    Period = "week"
	Month   Period = "month"
	Year    Period = "year"
)

// Report is the error budget over one period.
type Report struct {
	Period Period
	From   time.Time // inclusive
	To     time.Time // exclusive end of the period (calendar) or now (rolling)
	// Budget is the allowed bad events (ratio) or bad minutes (time slice)
	// over the period, exact.
	Budget *big.Rat
	// Consumed is what was bad so far.
	Consumed int64
	// Total is the events so far (ratio) or minutes of the period (time slice).
	Total int64
	// Remaining = Budget − Consumed (negative when overspent).
	Remaining *big.Rat
}

// RemainingRatio is Remaining ÷ Budget (1 = untouched, < 0 overspent).
func (r *Report) RemainingRatio() *big.Rat {
	if r.Budget.Sign() == 0 {
		if r.Consumed == 0 {
			return big.NewRat(1, 1)
		}
		return big.NewRat(-1, 1)
	}
	return new(big.Rat).Quo(r.Remaining, r.Budget)
}

// Float converts for JSON and metrics (never used in comparisons).
func Float(r *big.Rat) float64 {
	f, _ := r.Float64()
	return f
}

// PeriodBounds returns the calendar period containing now in loc.
func PeriodBounds(p Period, now time.Time, loc *time.Location, rolling time.Duration) (time.Time, time.Time, error) {
	t := now.In(loc)
	switch p {
	case Rolling:
		return now.Add(-rolling), now, nil
	case Week:
		// ISO weeks start on Monday.
		offset := (int(t.Weekday()) + 6) % 7
		from := time.Date(t.Year(), t.Month(), t.Day()-offset, 0, 0, 0, 0, loc)
		return from, from.AddDate(0, 0, 7), nil
	case Month:
		from := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, loc)
		return from, from.AddDate(0, 1, 0), nil
	case Year:
		from := time.Date(t.Year(), 1, 1, 0, 0, 0, 0, loc)
		return from, from.AddDate(1, 0, 0), nil
	}
	return time.Time{}, time.Time{}, fmt.Errorf("unknown period %q (rolling, week, month, year)", p)
}

// Report computes the budget of period p at now.
func (s *Spec) Report(c *Counters, now time.Time, p Period) (*Report, error) {
	return s.ReportAt(c, now, now, p)
}

// ReportAt computes the budget of the period p containing at (the rolling
// one ends at at) with the counts up to now: a past period is counted to
// its end, not only up to at. Open alerts are observed at now, never at a
// past at, which would count them only to at.
func (s *Spec) ReportAt(c *Counters, at, now time.Time, p Period) (*Report, error) {
	c.Observe(now)
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	from, to, err := PeriodBounds(p, at, loc, s.Period)
	if err != nil {
		return nil, err
	}
	firstMin := unixMinute(from)
	if from.Unix()%60 != 0 {
		firstMin++ // a partial first minute belongs to the previous period
	}
	// Up to the period's end, and no further than now: a calendar period
	// ends before to; the rolling one, as a burn window, with at's minute.
	lastMin := unixMinute(now)
	switch {
	case p == Rolling && at.Before(now):
		lastMin = unixMinute(at)
	case p != Rolling && !to.After(now):
		lastMin = unixMinute(to.Add(-time.Nanosecond))
	}
	bad, total := c.sum(firstMin, lastMin)
	r := &Report{Period: p, From: from, To: to, Consumed: bad}
	if s.Kind == TimeSlice {
		// The budget of a time slice is fixed by the period's length, which
		// varies with the calendar (28–31-day months, leap years, DST days).
		total = int64(to.Sub(from) / time.Minute)
	}
	r.Total = total
	r.Budget = new(big.Rat).Mul(s.Budget(), new(big.Rat).SetInt64(total))
	r.Remaining = new(big.Rat).Sub(r.Budget, new(big.Rat).SetInt64(bad))
	return r, nil
}
