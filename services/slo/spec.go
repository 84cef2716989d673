// Package slo holds service level objectives: exact error budgets, counters
// at minute and hour resolution, multiwindow multi-burn-rate evaluation and
// calendar budget reports. It is pure: no bus, no I/O; time comes from the
// caller. All comparisons use exact rational arithmetic — 100 − 99.9 in
// float64 is not 0.1, and an objective of 99.9 must mean a budget of exactly
// 1/1000.
package slo

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Kind is how the SLI is measured.
type Kind int

const (
	// TimeSlice: each minute is good or bad; a minute is bad while a matching
	// alert fires in it. Total = minutes in the window.
	TimeSlice Kind = iota
	// Ratio: good/total event counts.
	Ratio
)

func (k Kind) String() string {
	if k == TimeSlice {
		return "time_slice"
	}
	return "ratio"
}

// Severity of a burn-rate alert.
const (
	SeverityPage   = "page"
	SeverityTicket = "ticket"
)

// BurnRule fires when the burn rate is at least Factor over both windows.
type BurnRule struct {
	Severity string
	Factor   *big.Rat
	Long     time.Duration
	Short    time.Duration
}

// Spec is one SLO.
type Spec struct {
	Name string
	// Objective in percent, exact (99.9 → 999/10).
	Objective *big.Rat
	Period    time.Duration
	Kind      Kind
	// MinEvents: a ratio SLI with fewer events than this in a rule's long
	// window does not alert (little traffic makes ratios meaningless).
	MinEvents int64
	// Location for calendar reports (weeks start on Monday).
	Location *time.Location
	Rules    []BurnRule
}

// ParseObjective reads a percentage such as "99.9" exactly.
func ParseObjective(s string) (*big.Rat, error) {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	if s == "" {
		return nil, errors.New("objective is empty")
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '.' {
			return nil, fmt.Errorf("objective %q: want a decimal percentage such as 99.9", s)
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("objective %q: not a decimal number", s)
	}
	if r.Sign() <= 0 || r.Cmp(big.NewRat(100, 1)) >= 0 {
		return nil, fmt.Errorf("objective %q: must be above 0 and below 100", s)
	}
	return r, nil
}

// ParseFactor reads a burn-rate factor such as "14.4" exactly.
func ParseFactor(s string) (*big.Rat, error) {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok || r.Sign() <= 0 {
		return nil, fmt.Errorf("burn-rate factor %q: want a positive decimal", s)
	}
	return r, nil
}

// Budget is the allowed error ratio, 1 − objective/100 (exact).
func (s *Spec) Budget() *big.Rat {
	b := new(big.Rat).Quo(s.Objective, big.NewRat(100, 1))
	return b.Sub(big.NewRat(1, 1), b)
}

// Validate checks the spec and fills defaults (rules, location).
func (s *Spec) Validate() error {
	var errs []error
	if s.Objective == nil || s.Objective.Sign() <= 0 || s.Objective.Cmp(big.NewRat(100, 1)) >= 0 {
		errs = append(errs, errors.New("objective must be above 0 and below 100"))
	}
	if s.Period < time.Hour || s.Period > 366*24*time.Hour {
		errs = append(errs, errors.New("period must be between 1h and 366d"))
	}
	if s.Location == nil {
		s.Location = time.UTC
	}
	if len(s.Rules) == 0 && s.Period > 0 {
		s.Rules = DefaultRules(s.Period)
	}
	for i, r := range s.Rules {
		if r.Factor == nil || r.Factor.Sign() <= 0 {
			errs = append(errs, fmt.Errorf("burn rule %d: factor must be positive", i))
		}
		if r.Short <= 0 || r.Long <= 0 || r.Short > r.Long {
			errs = append(errs, fmt.Errorf("burn rule %d: need 0 < short window <= long window", i))
		}
		if r.Long > 366*24*time.Hour {
			errs = append(errs, fmt.Errorf("burn rule %d: long window must be at most 366d", i))
		}
		if r.Severity != SeverityPage && r.Severity != SeverityTicket {
			errs = append(errs, fmt.Errorf("burn rule %d: severity must be page or ticket", i))
		}
	}
	return errors.Join(errs...)
}

// DefaultRules is the SRE workbook's multiwindow, multi-burn-rate set for a
// 30-day period — page at 14.4× over 1h and 5m or 6× over 6h and 30m, ticket
// at 1× over 3d and 6h — with windows scaled by period/30d and rounded to
// whole minutes (at least one minute).
func DefaultRules(period time.Duration) []BurnRule {
	scale := func(d time.Duration) time.Duration {
		// d × period / 30d, in whole minutes, rounded half up.
		num := new(big.Int).Mul(big.NewInt(int64(d/time.Minute)), big.NewInt(int64(period/time.Minute)))
		den := big.NewInt(30 * 24 * 60)
		q, r := new(big.Int).QuoRem(num, den, new(big.Int))
		if new(big.Int).Mul(r, big.NewInt(2)).Cmp(den) >= 0 {
			q.Add(q, big.NewInt(1))
		}
		m := q.Int64()
		if m < 1 {
			m = 1
		}
		return time.Duration(m) * time.Minute
	}
	return []BurnRule{
		{Severity: SeverityPage, Factor: big.NewRat(72, 5), Long: scale(time.Hour), Short: scale(5 * time.Minute)},
		{Severity: SeverityPage, Factor: big.NewRat(6, 1), Long: scale(6 * time.Hour), Short: scale(30 * time.Minute)},
		{Severity: SeverityTicket, Factor: big.NewRat(1, 1), Long: scale(72 * time.Hour), Short: scale(6 * time.Hour)},
	}
}
