package slo

import (
	"math/big"
	"testing"
	"time"
)

func benchSpec(kind Kind) *Spec {
	s := &Spec{Name: "b", Objective: big.NewRat(999, 10), Period: 30 * 24 * time.Hour, Kind: kind}
	_ = s.Validate()
	return s
}

// fullRatio fills every minute of the last 7 days and every hour of the year.
func fullRatio(now time.Time) *Counters {
	var c Counters
	for i := 366 * 24 * 60; i >= 0; i -= 60 {
		c.AddRatio(now.Add(-time.Duration(i)*time.Minute), 990, 1000)
	}
	for i := 7*24*60 - 1; i >= 0; i-- {
		c.AddRatio(now.Add(-time.Duration(i)*time.Minute), 999, 1000)
	}
	return &c
}

// BenchmarkEvaluate is one evaluation of the three default burn rules of a
// ratio SLO with a full week of per-minute data (the worst case).
func BenchmarkEvaluate(b *testing.B) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	s, c := benchSpec(Ratio), fullRatio(now)
	b.ReportAllocs()
	for b.Loop() {
		s.Evaluate(c, now)
	}
}

// BenchmarkReportYear is the annual budget report (hour resolution).
func BenchmarkReportYear(b *testing.B) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	s, c := benchSpec(Ratio), fullRatio(now)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Report(c, now, Year); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddRatio is recording one count.
func BenchmarkAddRatio(b *testing.B) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	var c Counters
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		c.AddRatio(now.Add(time.Duration(i)*time.Second), 99, 100)
	}
}

// BenchmarkStateBytes reports memory and stored bytes of one SLO with full
// rings: the worst case, every minute and hour holding data.
func BenchmarkStateBytes(b *testing.B) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	c := fullRatio(now)
	var n int
	for b.Loop() {
		data, _ := c.MarshalBinary()
		n = len(data)
	}
	b.ReportMetric(float64(n), "stored-bytes/slo")
	b.ReportMetric(float64(minuteSlots*24+hourSlots*24), "memory-bytes/slo")
}
