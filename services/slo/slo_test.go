package slo

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/big"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) // a Monday

func spec(t *testing.T, objective string, period time.Duration, kind Kind) *Spec {
	t.Helper()
	obj, err := ParseObjective(objective)
	if err != nil {
		t.Fatal(err)
	}
	s := &Spec{Name: "test", Objective: obj, Period: period, Kind: kind}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestObjectiveIsExact(t *testing.T) {
	for obj, want := range map[string]*big.Rat{
		"99.9": big.NewRat(1, 1000), "99.95": big.NewRat(1, 2000), "99": big.NewRat(1, 100), "99.999": big.NewRat(1, 100000), "99.9%": big.NewRat(1, 1000),
	} {
		s := spec(t, obj, 30*24*time.Hour, Ratio)
		if s.Budget().Cmp(want) != 0 {
			t.Errorf("objective %s: budget %s, want %s", obj, s.Budget(), want)
		}
	}
	for _, bad := range []string{"", "100", "0", "-1", "abc", "99,9", "1e2", "101"} {
		if _, err := ParseObjective(bad); err == nil {
			t.Errorf("objective %q accepted", bad)
		}
	}
}

func TestDefaultRulesScaleWithPeriod(t *testing.T) {
	cases := map[time.Duration][][2]time.Duration{
		30 * 24 * time.Hour: {{time.Hour, 5 * time.Minute}, {6 * time.Hour, 30 * time.Minute}, {72 * time.Hour, 6 * time.Hour}},
		7 * 24 * time.Hour:  {{14 * time.Minute, time.Minute}, {84 * time.Minute, 7 * time.Minute}, {1008 * time.Minute, 84 * time.Minute}},
	}
	for period, want := range cases {
		rules := DefaultRules(period)
		for i, r := range rules {
			if r.Long != want[i][0] || r.Short != want[i][1] {
				t.Errorf("period %s rule %d: %s/%s, want %s/%s", period, i, r.Long, r.Short, want[i][0], want[i][1])
			}
		}
		if rules[0].Factor.Cmp(big.NewRat(144, 10)) != 0 || rules[0].Severity != SeverityPage || rules[2].Severity != SeverityTicket {
			t.Errorf("rules %+v", rules)
		}
	}
}

func firing(states []AlertState, rule int) bool { return states[rule].Firing }

func TestTotalOutagePagesWithinMinutes(t *testing.T) {
	s := spec(t, "99.9", 30*24*time.Hour, TimeSlice)
	var c Counters
	if firing(s.Evaluate(&c, t0), 0) {
		t.Fatal("paging with no outage")
	}
	c.Fire("checkout-down", t0.Add(time.Minute), time.Time{})
	st := s.Evaluate(&c, t0.Add(time.Minute))
	if !firing(st, 0) {
		t.Fatalf("a total outage of a 99.9%% SLO must page at once: %+v", st)
	}
	// The 6h/30m rule needs 6× over 6h: 0.006 × 360 = 2.16 bad minutes.
	if firing(st, 1) || !firing(s.Evaluate(&c, t0.Add(3*time.Minute)), 1) {
		t.Fatal("the 6h rule must fire on the third bad minute, not before")
	}
	// Recovery: the 5-minute short window clears the fast-burn page.
	c.Resolve("checkout-down", t0.Add(time.Minute), t0.Add(20*time.Minute))
	// Bad minutes are 1..19; the 5m window (now−5m, now] still holds minute
	// 19 at minute 23 and no bad minute at 24.
	if !firing(s.Evaluate(&c, t0.Add(23*time.Minute)), 0) {
		t.Fatal("resolved too early: the last bad minute is still in the 5m window")
	}
	if firing(s.Evaluate(&c, t0.Add(24*time.Minute)), 0) {
		t.Fatal("not resolved 5 minutes after recovery")
	}
}

// traffic adds one minute of ratio traffic at minute i after from.
func traffic(c *Counters, from time.Time, i int, perMinute, badPerMinute int64) {
	c.AddRatio(from.Add(time.Duration(i)*time.Minute), perMinute-badPerMinute, perMinute)
}

func TestTwoPercentErrorRatePagesAtWorkbookDetectionTime(t *testing.T) {
	s := spec(t, "99.9", 30*24*time.Hour, Ratio)
	var c Counters
	start := t0.Add(-24 * time.Hour)
	for i := 0; i < 24*60; i++ {
		traffic(&c, start, i, 1000, 0)
	}
	// SRE workbook: detection time = (1−SLO)/error_ratio × window × burn
	// threshold = 0.001/0.02 × 60 min × 14.4 = 43.2 min.
	first := -1
	for i := 0; i < 60; i++ {
		traffic(&c, t0, i, 1000, 20)
		if firing(s.Evaluate(&c, t0.Add(time.Duration(i)*time.Minute)), 0) && first < 0 {
			first = i + 1 // minutes of errors so far
		}
	}
	if first != 44 {
		t.Fatalf("paged after %d minutes of 2%% errors, want 44 (the first whole minute past 43.2)", first)
	}
	// Errors stop: the page resolves within the 5-minute short window.
	var resolvedAfter int
	for i := 60; i < 70; i++ {
		traffic(&c, t0, i, 1000, 0)
		if !firing(s.Evaluate(&c, t0.Add(time.Duration(i)*time.Minute)), 0) {
			resolvedAfter = i - 59
			break
		}
	}
	if resolvedAfter == 0 || resolvedAfter > 5 {
		t.Fatalf("page resolved %d minutes after recovery, want within 5", resolvedAfter)
	}
}

func TestSteadyBudgetRateNeverPages(t *testing.T) {
	s := spec(t, "99.9", 30*24*time.Hour, Ratio)
	var c Counters
	for i := 0; i < 4*24*60; i++ {
		traffic(&c, t0, i, 1000, 1) // 0.1%: burn exactly 1
		if i%30 == 0 {
			st := s.Evaluate(&c, t0.Add(time.Duration(i)*time.Minute))
			if firing(st, 0) || firing(st, 1) {
				t.Fatalf("paged at minute %d at a burn rate of exactly 1", i)
			}
		}
	}
}

func TestSlightlyAboveBudgetRateOpensTicketWithinDays(t *testing.T) {
	s := spec(t, "99.9", 30*24*time.Hour, Ratio)
	var c Counters
	for i := 0; i < 3*24*60; i++ {
		traffic(&c, t0, i, 10000, 0)
	}
	from := t0.Add(3 * 24 * time.Hour)
	// 0.11% errors: the 3-day ratio reaches 0.1% after 3d × 0.1/0.11 ≈ 2.73 days.
	opened := -1
	for i := 0; i < 3*24*60; i++ {
		traffic(&c, from, i, 10000, 11)
		if i < 2*24*60 || i%10 != 0 {
			continue
		}
		st := s.Evaluate(&c, from.Add(time.Duration(i)*time.Minute))
		if firing(st, 0) || firing(st, 1) {
			t.Fatalf("paged at a burn rate of 1.1")
		}
		if firing(st, 2) {
			opened = i
			break
		}
	}
	days := float64(opened) / (24 * 60)
	if opened < 0 || days < 2.7 || days > 2.75 {
		t.Fatalf("ticket opened after %.3f days, want ≈2.73", days)
	}
}

func TestExactThresholdBothSides(t *testing.T) {
	s := spec(t, "99.9", 30*24*time.Hour, Ratio)
	for _, tc := range []struct {
		bad  int64
		fire bool
	}{{864, true}, {863, false}, {865, true}} {
		var c Counters
		// All traffic in one minute: long (1h) and short (5m) windows agree.
		c.AddRatio(t0, 60000-tc.bad, 60000)
		st := s.Evaluate(&c, t0)
		if st[0].Firing != tc.fire {
			t.Errorf("bad=%d of 60000 (burn %s): firing=%v, want %v", tc.bad, st[0].LongBurn.FloatString(4), st[0].Firing, tc.fire)
		}
	}
	// Factor 6 over 6h: exactly 0.6% on the boundary.
	var c Counters
	c.AddRatio(t0, 1000-6, 1000)
	if st := s.Evaluate(&c, t0); !st[1].Firing {
		t.Error("burn exactly 6 must fire the 6h/30m rule")
	}
}

func TestMinEventsGuard(t *testing.T) {
	s := spec(t, "99.9", 30*24*time.Hour, Ratio)
	s.MinEvents = 100
	var c Counters
	c.AddRatio(t0, 0, 10) // 100% errors, but 10 requests
	if st := s.Evaluate(&c, t0); st[0].Firing {
		t.Fatal("paged on 10 requests with min_events 100")
	}
	c.AddRatio(t0, 0, 90)
	if st := s.Evaluate(&c, t0); !st[0].Firing {
		t.Fatal("not paged with 100 failing requests")
	}
}

func TestRestartKeepsCounters(t *testing.T) {
	s := spec(t, "99.9", 30*24*time.Hour, TimeSlice)
	var c Counters
	c.Fire("a", t0, time.Time{})
	s.Evaluate(&c, t0.Add(10*time.Minute))
	c.Resolve("b", t0.Add(-20*time.Hour), t0.Add(-19*time.Hour))
	data, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Counters
	if err := back.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(30 * time.Minute)
	a, b := s.Evaluate(&c, now), s.Evaluate(&back, now)
	for i := range a {
		if a[i].Firing != b[i].Firing || a[i].LongBurn.Cmp(b[i].LongBurn) != 0 || a[i].ShortBurn.Cmp(b[i].ShortBurn) != 0 {
			t.Fatalf("rule %d differs after a restart: %+v vs %+v", i, a[i], b[i])
		}
	}
	ra, _ := s.Report(&c, now, Month)
	rb, _ := s.Report(&back, now, Month)
	if ra.Consumed != rb.Consumed || ra.Consumed != 31+60 {
		t.Fatalf("consumed %d / %d, want 91 bad minutes", ra.Consumed, rb.Consumed)
	}
}

func TestCalendarPeriods(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata")
	}
	cases := []struct {
		name    string
		p       Period
		now     time.Time
		loc     *time.Location
		minutes int64
		from    string
	}{
		{"leap February", Month, time.Date(2024, 2, 10, 12, 0, 0, 0, time.UTC), time.UTC, 29 * 1440, "2024-02-01"},
		{"February", Month, time.Date(2026, 2, 10, 12, 0, 0, 0, time.UTC), time.UTC, 28 * 1440, "2026-02-01"},
		{"31-day month", Month, time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC), time.UTC, 31 * 1440, "2026-12-01"},
		{"30-day month", Month, time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), time.UTC, 30 * 1440, "2026-11-01"},
		{"leap year", Year, time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), time.UTC, 366 * 1440, "2024-01-01"},
		{"year", Year, time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC), time.UTC, 365 * 1440, "2026-01-01"},
		{"week starts Monday", Week, time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), time.UTC, 7 * 1440, "2026-11-23"},
		{"Sunday is the week's last day", Week, time.Date(2026, 11, 29, 23, 0, 0, 0, time.UTC), time.UTC, 7 * 1440, "2026-11-23"},
		{"DST month is an hour longer", Month, time.Date(2026, 10, 15, 0, 0, 0, 0, berlin), berlin, 31*1440 + 60, "2026-10-01"},
		{"time zone decides the day", Week, time.Date(2026, 11, 22, 23, 30, 0, 0, time.UTC), berlin, 7 * 1440, "2026-11-23"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := spec(t, "99.9", 30*24*time.Hour, TimeSlice)
			s.Location = tc.loc
			var c Counters
			r, err := s.Report(&c, tc.now, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if r.Total != tc.minutes || r.From.Format("2006-01-02") != tc.from {
				t.Fatalf("%s: from %s, %d minutes; want %s, %d", tc.p, r.From, r.Total, tc.from, tc.minutes)
			}
			want := new(big.Rat).Mul(big.NewRat(1, 1000), new(big.Rat).SetInt64(tc.minutes))
			if r.Budget.Cmp(want) != 0 || r.RemainingRatio().Cmp(big.NewRat(1, 1)) != 0 {
				t.Fatalf("budget %s, want %s", r.Budget.FloatString(3), want.FloatString(3))
			}
		})
	}
}

func TestThirtyDayMonthBudgetIs43Point2Minutes(t *testing.T) {
	s := spec(t, "99.9", 30*24*time.Hour, TimeSlice)
	var c Counters
	c.Resolve("x", time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 3, 10, 50, 0, 0, time.UTC))
	r, err := s.Report(&c, time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), Month)
	if err != nil {
		t.Fatal(err)
	}
	if r.Budget.Cmp(big.NewRat(432, 10)) != 0 || r.Consumed != 50 {
		t.Fatalf("budget %s consumed %d", r.Budget.FloatString(2), r.Consumed)
	}
	if r.Remaining.Cmp(big.NewRat(-68, 10)) != 0 || r.RemainingRatio().Sign() >= 0 {
		t.Fatalf("remaining %s (ratio %s): a 50-minute outage overspends 43.2 minutes", r.Remaining.FloatString(2), r.RemainingRatio().FloatString(3))
	}
}

func TestOverlappingAlertsCountAMinuteOnce(t *testing.T) {
	s := spec(t, "99.9", 30*24*time.Hour, TimeSlice)
	var c Counters
	c.Resolve("a", t0, t0.Add(10*time.Minute))
	c.Resolve("b", t0.Add(5*time.Minute), t0.Add(15*time.Minute))
	if w := s.Window(&c, t0.Add(59*time.Minute), time.Hour); w.Bad != 15 || w.Total != 60 {
		t.Fatalf("window %+v, want 15 bad minutes of 60", w)
	}
}

func FuzzParseObjective(f *testing.F) {
	for _, s := range []string{"99.9", "0.1", "99.999%", "1e3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseObjective(s)
		if err == nil && (r.Sign() <= 0 || r.Cmp(big.NewRat(100, 1)) >= 0) {
			t.Fatalf("accepted %q = %s", s, r)
		}
	})
}

func FuzzUnmarshalCounters(f *testing.F) {
	var c Counters
	c.AddRatio(t0, 5, 10)
	c.Fire("x", t0, time.Time{})
	c.Fire("y", t0, t0.Add(time.Minute))
	b, _ := c.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Counters
		if c.UnmarshalBinary(data) == nil {
			s := &Spec{Objective: big.NewRat(999, 10), Period: 30 * 24 * time.Hour}
			_ = s.Validate()
			s.Evaluate(&c, t0)
			c.Observe(t0.Add(time.Hour)) // closes what ended
		}
	})
}

// A firing alert no longer sent, never resolved (its rule deleted, its
// Prometheus gone), is closed at its end, as Alertmanager resolves it:
// open, it marked every minute after it bad and stayed in the state for
// ever. Each re-send moves the end; the end survives a store and load.
func TestAlertNoLongerSentClosesAtItsEnd(t *testing.T) {
	var c Counters
	c.Fire("gone", t0, t0.Add(10*time.Minute))
	c.Fire("gone", t0, t0.Add(20*time.Minute)) // sent again
	c.Observe(t0.Add(5 * time.Minute))
	data, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var d Counters
	if err := d.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if d.Firing() != 1 {
		t.Fatalf("after a store and load, %d open, want 1", d.Firing())
	}
	d.Observe(t0.Add(2 * time.Hour))
	if d.Firing() != 0 {
		t.Fatalf("two hours after its end, %d open, want none", d.Firing())
	}
	m := unixMinute(t0)
	if bad, _ := d.sum(m, m+120); bad != 20 {
		t.Fatalf("%d bad minutes, want 20 (until its last end)", bad)
	}
}

// State stored before ends were kept (version 1) still loads; its open
// alerts stay open until resolved, as they did.
func TestCountersVersion1StillLoads(t *testing.T) {
	v1 := []byte{1}
	for _, u := range []uint64{uint64(unixMinute(t0)), 0, 0, 0, 1, 1} {
		v1 = binary.AppendUvarint(v1, u)
	}
	v1 = append(v1, 'a')
	v1 = binary.AppendVarint(v1, t0.UnixNano())
	v1 = binary.AppendUvarint(v1, uint64(unixMinute(t0)))
	var c Counters
	if err := c.UnmarshalBinary(v1); err != nil {
		t.Fatal(err)
	}
	c.Observe(t0.Add(time.Hour))
	if c.Firing() != 1 {
		t.Fatalf("%d open, want the version-1 alert still open", c.Firing())
	}
}

// One count may exceed 2^32 events (POST /api/v1/slo/{name}/events takes
// 64-bit counts): 4,294,967,396 requests with 100 bad are a burn of 0.00002,
// not 100 bad of 100. Every window and report reads the same counts, and a
// store and load keeps them.
func TestCountAbove32BitsIsExact(t *testing.T) {
	s := spec(t, "99.9", 30*24*time.Hour, Ratio)
	now := t0.Add(12 * time.Hour)
	var stored Counters
	stored.AddRatio(now, 1<<32, 1<<32+100)
	data, err := stored.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var loaded Counters
	if err := loaded.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Counters{"in memory": &stored, "loaded": &loaded} {
		for _, st := range s.Evaluate(c, now) {
			if st.Firing {
				t.Errorf("%s: rule %d fires at burn %s on 100 bad of 4294967396", name, st.Rule, st.LongBurn.FloatString(4))
			}
		}
		if w := s.Window(c, now, time.Hour); w.Bad != 100 || w.Total != 1<<32+100 {
			t.Errorf("%s: 1h window %d bad of %d, want 100 of 4294967396", name, w.Bad, w.Total)
		}
		for _, p := range []Period{Rolling, Week, Month, Year} {
			if r, _ := s.Report(c, now, p); r.Consumed != 100 || r.Total != 1<<32+100 {
				t.Errorf("%s: %s report %d bad of %d, want 100 of 4294967396", name, p, r.Consumed, r.Total)
			}
		}
	}
}

// State stored while minute counts were 32-bit (the same varints) loads
// unchanged: this blob was written by that code for the counters below.
func TestCounters32BitStateStillLoads(t *testing.T) {
	old, _ := hex.DecodeString("02b0c8a00e0003aec8a00e01000101000164e80703b8b21e050afb0102000164e80701017880c08ed3aca09ce4318080c9e7f0f89de431b0c8a00e")
	var c, want Counters
	if err := c.UnmarshalBinary(old); err != nil {
		t.Fatal(err)
	}
	want.AddRatio(t0.Add(12*time.Hour), 900, 1000)
	want.AddRatio(t0.Add(-10*24*time.Hour), 5, 10)
	want.Fire("x", t0.Add(12*time.Hour-2*time.Minute), t0.Add(13*time.Hour))
	want.Observe(t0.Add(12 * time.Hour))
	if got, _ := c.MarshalBinary(); !bytes.Equal(got, old) {
		t.Fatalf("re-encoded differently:\n%x\n%x", got, old)
	}
	s := spec(t, "99.9", 30*24*time.Hour, Ratio)
	for _, p := range []Period{Rolling, Month, Year} {
		a, _ := s.Report(&c, t0.Add(12*time.Hour), p)
		b, _ := s.Report(&want, t0.Add(12*time.Hour), p)
		if a.Consumed != b.Consumed || a.Total != b.Total {
			t.Errorf("%s: loaded %d of %d, want %d of %d", p, a.Consumed, a.Total, b.Consumed, b.Total)
		}
	}
}

// A report for a past at covers its whole period with the counts up to now:
// October asked for on 15 October holds the outage of the 25th, and a month
// holds the minutes of an alert still firing now, observed at now.
func TestReportAtPastTimeCountsItsWholePeriod(t *testing.T) {
	s := spec(t, "99.9", 30*24*time.Hour, Ratio)
	now := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var c Counters
	c.AddRatio(time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC), 1000, 1000)
	c.AddRatio(time.Date(2026, 10, 25, 12, 0, 0, 0, time.UTC), 0, 100)
	c.AddRatio(time.Date(2026, 11, 5, 12, 0, 0, 0, time.UTC), 0, 7) // November: not October's
	c.Observe(now)
	r, err := s.ReportAt(&c, time.Date(2026, 10, 15, 0, 0, 0, 0, time.UTC), now, Month)
	if err != nil {
		t.Fatal(err)
	}
	if r.From.Format(time.DateOnly) != "2026-10-01" || r.Consumed != 100 || r.Total != 1100 {
		t.Fatalf("October from %s: %d bad of %d, want 100 of 1100", r.From, r.Consumed, r.Total)
	}

	ts := spec(t, "99.9", 30*24*time.Hour, TimeSlice)
	var open Counters
	open.Fire("a", now.Add(-30*time.Minute), time.Time{})
	r, _ = ts.ReportAt(&open, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), now, Month)
	if r.Consumed != 31 || open.Firing() != 1 {
		t.Fatalf("November with an alert firing for 30 minutes: %d bad minutes, %d open", r.Consumed, open.Firing())
	}
}
