package rulerfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/klaxon-sh/klaxon/services/ruleset"
	"github.com/klaxon-sh/klaxon/services/ruleset/logql"
)

func TestValidatePositionsAndExprCheck(t *testing.T) {
	body := `groups:
  - name: g
    interval: 1q
    rules:
      - alert: A
        expr: |
          bad(
        labels: {"": x}
      - record: ok:rate5m
        expr: '{app="x"} |= "y"'
      - alert: B
        bogus: 1
        expr: up
`
	check := func(e string) (bool, error) {
		if strings.Contains(e, "|=") {
			return true, nil
		}
		if strings.Contains(e, "(") && !strings.Contains(e, ")") {
			return false, errors.New("unclosed parenthesis")
		}
		return false, nil
	}
	res := Validate("f", []byte(body), check)
	var got []string
	for _, e := range res.Errors {
		var re *ruleset.Error
		if !errors.As(e, &re) {
			t.Fatalf("unpositioned %v", e)
		}
		got = append(got, e.Error())
	}
	want := []string{
		`f:3:15: interval: unknown unit "q" in duration "1q"`,
		"f:7:15: expr: unclosed parenthesis",
		`f:8:18: labels: invalid label name ""`,
		`f:12:9: unknown field "bogus" in rule`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if res.Rules != 3 || res.Skipped != 1 {
		t.Errorf("rules %d skipped %d, want 3 and 1", res.Rules, res.Skipped)
	}
}

// LogQL errors land on the file position of the offending token where the
// YAML holds the expression verbatim, and on the expr with the position
// inside it otherwise.
func TestLogQLErrorPositions(t *testing.T) {
	body := `groups:
  - name: g
    rules:
      - alert: Plain
        expr: sum(rate({app="x"}[5m]) by (x)) > 1
      - alert: Quoted
        expr: "sum(count_over_time({app=\"x\"} | json [5m])) and 1"
      - alert: Single
        expr: 'count_over_time({app="x"} |= "a" [5m) > 1'
      - record: block:sum
        expr: |
          sum by (level) (
            count_over_time({app="x"} | logfmt | level = [5m])
          )
      - record: folded:sum
        expr: >
          sum(count_over_time({app="x"}
          | unwrap x [5m]))
      - record: log:query
        expr: '{app="x"} |= "error"'
      - record: prom:up
        expr: up{job="x"} == 0
      - record: ok:rate
        expr: sum(rate({app="x"} | json | status >= 500 [5m]))
`
	res := Validate("f", []byte(body), logql.Check)
	var got []string
	for _, e := range res.Errors {
		got = append(got, e.Error())
	}
	want := []string{
		"f:5:39: expr: grouping not allowed for rate aggregation",
		"f:7:15: expr: 1:45: unexpected literal for right leg of logical/set binary operation (and)", // escapes: position inside
		"f:9:49: expr: missing closing ']' in duration",
		"f:13:58: expr: unexpected range [5m] after level =, expected a string, number, duration or byte size",
		"f:17:15: expr: 1:5: invalid aggregation count_over_time with unwrap", // folded: position inside
		"f:20:16: expr: a ruler expression must be a metric query (e.g. wrap it in rate(...[5m]))",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if res.Skipped != 1 {
		t.Errorf("skipped %d, want 1 (the PromQL rule)", res.Skipped)
	}
}

func FuzzValidate(f *testing.F) {
	f.Add([]byte("groups: [{name: g, rules: [{alert: A, expr: up, for: 5m}]}]\n"))
	f.Add([]byte("groups: [{name: g}, {name: g, rules: [{record: 'a b'}]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, e := range Validate("f", data, nil).Errors {
			var re *ruleset.Error
			if !errors.As(e, &re) || re.Line < 1 {
				t.Fatalf("error without a position: %#v", e)
			}
		}
	})
}
