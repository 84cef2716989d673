package rulerfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/klaxon-sh/klaxon/services/ruleset"
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
