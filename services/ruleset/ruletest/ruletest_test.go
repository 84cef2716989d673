package ruletest

import (
	"errors"
	"strings"
	"testing"

	"github.com/klaxon-sh/klaxon/services/ruleset"
)

func TestParseErrorPositions(t *testing.T) {
	cases := []struct {
		name, body string
		want       []string
	}{
		{"syntax", "tests: [\n", []string{"f:1:1: did not find expected node content"}},
		{"not a mapping", "- 1\n", []string{"f:1:1: expected a mapping with tests:"}},
		{"unknown field", "tests:\n  - name: x\n    inputs: []\n", []string{`f:3:5: unknown field "inputs"`}},
		{"no tests", "rule_files: [a.yml]\n", []string{"f:1:1: no tests"}},
		{"every semantic error", `start: yesterday
tests:
  - input:
      - at: 5m
        alerts: [{labels: {}}]
      - at: 1m
        events: [{name: x}]
      - at: 2m
    expect:
      - at: 1x
        receiver: r
        status: paging
        alerts: [{labels: {a: b}, annotations: {s: t}}]
      - receiver: r
    until: 1m
`, []string{
			`f:1:8: start: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`,
			"f:5:18: alert: labels are required",
			"f:6:13: input steps must be in time order (1m after 5m)",
			"f:7:18: event: kind is required",
			"f:8:13: input steps must be in time order (2m after 5m)",
			"f:8:9: input step has neither alerts nor events",
			`f:10:13: at: unknown unit "x" in duration "1x"`,
			`f:12:17: status must be firing or resolved, not "paging"`,
			"f:13:48: expected alerts are compared by labels and status only",
			"f:14:9: at is required",
			"f:14:9: expected notification: alerts is required",
			"f:15:12: until 1m is before the last input or expectation (5m)",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f", []byte(tc.body))
			got := lines(err)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func lines(err error) []string {
	if err == nil {
		return nil
	}
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, lines(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// FuzzParse: the rule-test parser never panics, and its errors are
// positioned.
func FuzzParse(f *testing.F) {
	f.Add([]byte("tests:\n  - input: [{at: 0s, alerts: [{labels: {a: b}}]}]\n    expect: [{at: 0s, receiver: r, alerts: [{labels: {a: b}}]}]\n"))
	f.Add([]byte("start: 2024-01-01T00:00:00Z\ntests: [{until: 1h}]\n"))
	f.Add([]byte("tests: [{input: [{at: -1s, events: [{kind: k8s}]}]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse("f", data)
		for _, e := range unwrapAll(err) {
			var re *ruleset.Error
			if !errors.As(e, &re) || re.Line < 1 || re.Col < 1 {
				t.Fatalf("error without a position: %#v", e)
			}
		}
	})
}

func unwrapAll(err error) []error {
	if err == nil {
		return nil
	}
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unwrapAll(e)...)
		}
		return out
	}
	return []error{err}
}
