package slo

import (
	"fmt"
	"math/big"
	"testing"
	"time"
)

// TestExactThresholdEveryRuleAndWindow puts each default burn rule of a
// 99.9% SLO (budget exactly 1/1000) exactly on its threshold and one bad
// event below it, for the long and the short window separately: the other
// window is well above the threshold, so only the window under test decides.
//
// Traffic, for a rule with long window L and short window S at now:
//   - now−S+1m (the oldest minute of the short window): 10,000 events, Y bad;
//   - now−S (the newest minute outside the short window) and now−L+1m (the
//     oldest minute of the long window): 45,000 events each, XA and XB bad;
//   - now−L (just left the long window): 100,000 events, all bad.
//
// So the long window holds 100,000 events (threshold: factor × 100 bad) and
// the short one 10,000 (threshold: factor × 10 bad). An off-by-one minute at
// either edge of either window flips one of the cases.
func TestExactThresholdEveryRuleAndWindow(t *testing.T) {
	s := spec(t, "99.9", 30*24*time.Hour, Ratio)
	if s.Budget().Cmp(big.NewRat(1, 1000)) != 0 {
		t.Fatalf("budget %s", s.Budget())
	}
	now := t0.Add(4 * 24 * time.Hour)
	for i, want := range []struct {
		factor      *big.Rat
		long, short time.Duration
		longBad     int64 // bad events of 100,000 at factor × budget
		shortBad    int64 // bad events of 10,000 at factor × budget
	}{
		{big.NewRat(144, 10), time.Hour, 5 * time.Minute, 1440, 144},
		{big.NewRat(6, 1), 6 * time.Hour, 30 * time.Minute, 600, 60},
		{big.NewRat(1, 1), 72 * time.Hour, 6 * time.Hour, 100, 10},
	} {
		r := s.Rules[i]
		if r.Factor.Cmp(want.factor) != 0 || r.Long != want.long || r.Short != want.short {
			t.Fatalf("rule %d is %s× over %s/%s", i, r.Factor.FloatString(1), r.Long, r.Short)
		}
		cases := []struct {
			name      string
			y, xa, xb int64
			fire      bool
			// atLong/atShort: that window's burn rate is exactly the factor.
			atLong, atShort bool
		}{
			// Long exactly at the threshold, short at twice it.
			{"long at threshold", 2 * want.shortBad, want.longBad/2 - 2*want.shortBad, want.longBad / 2, true, true, false},
			{"long one bad event below", 2 * want.shortBad, want.longBad/2 - 2*want.shortBad, want.longBad/2 - 1, false, false, false},
			// Short exactly at the threshold, long at about twice it.
			{"short at threshold", want.shortBad, want.longBad, want.longBad, true, false, true},
			{"short one bad event below", want.shortBad - 1, want.longBad, want.longBad, false, false, false},
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s×%s-%s/%s", r.Factor.FloatString(1), r.Long, r.Short, tc.name), func(t *testing.T) {
				var c Counters
				c.AddRatio(now.Add(-r.Long), 0, 100000)
				c.AddRatio(now.Add(-r.Long+time.Minute), 45000-tc.xb, 45000)
				c.AddRatio(now.Add(-r.Short), 45000-tc.xa, 45000)
				c.AddRatio(now.Add(-r.Short+time.Minute), 10000-tc.y, 10000)
				long, short := s.Window(&c, now, r.Long), s.Window(&c, now, r.Short)
				if long.Total != 100000 || short.Total != 10000 {
					t.Fatalf("windows hold %d and %d events, want 100000 and 10000", long.Total, short.Total)
				}
				st := s.Evaluate(&c, now)[i]
				if st.Firing != tc.fire {
					t.Errorf("firing=%v, want %v (burn %s over %s, %s over %s, factor %s)", st.Firing, tc.fire,
						st.LongBurn.FloatString(4), r.Long, st.ShortBurn.FloatString(4), r.Short, r.Factor.FloatString(1))
				}
				if tc.atLong != (st.LongBurn.Cmp(r.Factor) == 0) || tc.atShort != (st.ShortBurn.Cmp(r.Factor) == 0) {
					t.Errorf("burn rates %s / %s: want exactly %s over the window on the threshold", st.LongBurn.RatString(), st.ShortBurn.RatString(), r.Factor.RatString())
				}
				// The window not under test is above the threshold in every case.
				if st.LongBurn.Cmp(r.Factor) < 0 && st.ShortBurn.Cmp(r.Factor) < 0 {
					t.Errorf("both windows below the threshold: the case tests nothing")
				}
			})
		}
	}
}

// TestTimeSliceThresholdEveryRule: a time-slice SLI's thresholds are whole
// bad minutes (at 99.9%: 1 of 60 and 1 of 5 for 14.4×; 3 of 360 and 1 of 30
// for 6×; 5 of 4,320 and 1 of 360 for 1×). Each rule with the fewest bad
// minutes that fire it, the oldest one on the long window's first minute
// and one on the short window's first minute; then the oldest moved just
// out of the long window, then the newest just out of the short one.
func TestTimeSliceThresholdEveryRule(t *testing.T) {
	s := spec(t, "99.9", 30*24*time.Hour, TimeSlice)
	now := t0.Add(4 * 24 * time.Hour)
	m := time.Minute
	for _, tc := range []struct {
		rule int
		name string
		bad  []time.Duration // minutes before now
		fire bool
	}{
		{0, "1 bad minute on the short window's first minute", []time.Duration{4 * m}, true},
		{0, "1 bad minute just before the short window", []time.Duration{5 * m}, false},
		{1, "3 of 360 and 1 of 30", []time.Duration{29 * m, 30 * m, 359 * m}, true},
		{1, "2 of 360: the oldest left the long window", []time.Duration{29 * m, 30 * m, 360 * m}, false},
		{1, "3 of 360 but none of 30", []time.Duration{30 * m, 31 * m, 359 * m}, false},
		{2, "5 of 4320 and 1 of 360", []time.Duration{359 * m, 360 * m, 361 * m, 362 * m, 4319 * m}, true},
		{2, "4 of 4320: the oldest left the long window", []time.Duration{359 * m, 360 * m, 361 * m, 362 * m, 4320 * m}, false},
		{2, "5 of 4320 but none of 360", []time.Duration{360 * m, 361 * m, 362 * m, 363 * m, 4319 * m}, false},
	} {
		t.Run(fmt.Sprintf("rule%d/%s", tc.rule, tc.name), func(t *testing.T) {
			var c Counters
			for i, d := range tc.bad {
				start := now.Add(-d)
				c.Resolve(fmt.Sprint("alert-", i), start, start.Add(time.Minute))
			}
			st := s.Evaluate(&c, now)[tc.rule]
			if st.Firing != tc.fire {
				t.Errorf("firing=%v, want %v (burn %s over %s, %s over %s)", st.Firing, tc.fire,
					st.LongBurn.FloatString(4), st.Long, st.ShortBurn.FloatString(4), st.Short)
			}
		})
	}
}

// TestMinEventsBoundary: with min_events 100 a ratio SLI alerts from the
// 100th event in the rule's long window, not from the 99th, and it is the
// long window's events that count (the short window may hold fewer).
func TestMinEventsBoundary(t *testing.T) {
	s := spec(t, "99.9", 30*24*time.Hour, Ratio)
	s.MinEvents = 100
	now := t0.Add(time.Hour)
	for _, tc := range []struct {
		name              string
		longOnly, inShort int64 // good events at now−30m; bad events at now
		fire              bool
	}{
		{"99 events, all bad", 0, 99, false},
		{"100 events, all bad", 0, 100, true},
		{"99 in the long window, 40 in the short", 59, 40, false},
		{"100 in the long window, 40 in the short", 60, 40, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Counters
			if tc.longOnly > 0 {
				c.AddRatio(now.Add(-30*time.Minute), tc.longOnly, tc.longOnly)
			}
			c.AddRatio(now, 0, tc.inShort)
			st := s.Evaluate(&c, now)[0]
			if st.Firing != tc.fire {
				t.Errorf("firing=%v, want %v (burn %s over 1h, %s over 5m)", st.Firing, tc.fire, st.LongBurn.FloatString(2), st.ShortBurn.FloatString(2))
			}
		})
	}
}
