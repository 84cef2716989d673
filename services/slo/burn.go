package slo

import (
	"math/big"
	"time"
)

// WindowRatio is the exact error ratio over the window ending at now: bad
// and total counts (for a time slice, bad minutes and minutes).
type WindowRatio struct {
	Bad, Total int64
}

// Ratio returns bad/total (0 when total is 0).
func (w WindowRatio) Ratio() *big.Rat {
	if w.Total == 0 {
		return new(big.Rat)
	}
	return big.NewRat(w.Bad, w.Total)
}

// Burn returns the burn rate: error ratio ÷ budget.
func (w WindowRatio) Burn(budget *big.Rat) *big.Rat {
	return new(big.Rat).Quo(w.Ratio(), budget)
}

// atLeast reports bad/total ≥ factor×budget without division:
// bad ≥ factor × budget × total.
func (w WindowRatio) atLeast(factor, budget *big.Rat) bool {
	if w.Total == 0 {
		return false
	}
	lhs := new(big.Rat).SetInt64(w.Bad)
	rhs := new(big.Rat).Mul(factor, budget)
	rhs.Mul(rhs, new(big.Rat).SetInt64(w.Total))
	return lhs.Cmp(rhs) >= 0
}

// Window measures the error ratio over the last d up to and including the
// minute of now: (now−d, now].
func (s *Spec) Window(c *Counters, now time.Time, d time.Duration) WindowRatio {
	last := unixMinute(now)
	n := uint32(d / time.Minute)
	if n == 0 {
		n = 1
	}
	first := last - n + 1
	bad, total := c.sum(first, last)
	if s.Kind == TimeSlice {
		total = int64(n)
	}
	return WindowRatio{Bad: bad, Total: total}
}

// AlertState is the outcome of one burn rule at one evaluation.
type AlertState struct {
	Rule      int
	Severity  string
	Long      time.Duration
	Short     time.Duration
	Factor    *big.Rat
	LongBurn  *big.Rat
	ShortBurn *big.Rat
	Firing    bool
}

// Evaluate applies every burn rule at now. A rule fires when the burn rate
// is at least its factor over both windows; for ratio SLIs, only when the
// long window holds at least MinEvents events.
func (s *Spec) Evaluate(c *Counters, now time.Time) []AlertState {
	c.Observe(now)
	budget := s.Budget()
	out := make([]AlertState, len(s.Rules))
	for i, r := range s.Rules {
		long := s.Window(c, now, r.Long)
		short := s.Window(c, now, r.Short)
		firing := long.atLeast(r.Factor, budget) && short.atLeast(r.Factor, budget)
		if s.Kind == Ratio && long.Total < s.MinEvents {
			firing = false
		}
		out[i] = AlertState{Rule: i, Severity: r.Severity, Long: r.Long, Short: r.Short, Factor: r.Factor,
			LongBurn: long.Burn(budget), ShortBurn: short.Burn(budget), Firing: firing}
	}
	return out
}
