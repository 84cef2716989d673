// Package rulerfile validates Prometheus and Loki ruler files (YAML with
// `groups:` of alerting and recording rules) that live beside Klaxon's rule
// files, reporting every error as file:line:col: message. Expression syntax
// is checked by an ExprCheck the caller passes (klaxonctl passes the LogQL
// checker of package logql), so the server never links an expression parser.
package rulerfile

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// ExprCheck validates one expression. It returns skipped=true when it cannot
// judge the expression (PromQL given to a LogQL checker); err is then
// ignored. An error with a method ExprPosition() (offset int, msg string)
// (logql.Error has one) is reported at that byte offset's position in the
// file when the YAML scalar maps onto the file character for character.
type ExprCheck func(expr string) (skipped bool, err error)

// IsRulerFile reports whether the YAML document root is a ruler file.
func IsRulerFile(root *yaml.Node) bool {
	if root == nil || root.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "groups" {
			return true
		}
	}
	return false
}

// Result is what validating a file found.
type Result struct {
	Errors []error
	// Skipped counts expressions the ExprCheck could not judge.
	Skipped int
	Rules   int
}

// ValidateFile reads and validates path.
func ValidateFile(path string, check ExprCheck) Result {
	data, err := os.ReadFile(path)
	if err != nil {
		return Result{Errors: []error{err}}
	}
	return Validate(path, data, check)
}

var (
	groupKeys = map[string]bool{"name": true, "interval": true, "query_offset": true, "limit": true, "rules": true, "labels": true}
	ruleKeys  = map[string]bool{"record": true, "alert": true, "expr": true, "for": true, "keep_firing_for": true, "labels": true, "annotations": true}
	// metricNameRE is the legacy metric name syntax recording rules need.
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
)

type validator struct {
	path  string
	lines []string // the file's lines, to place expression errors
	res   Result
}

func (v *validator) at(n *yaml.Node, format string, args ...any) {
	v.res.Errors = append(v.res.Errors, &ruleset.Error{File: v.path, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks data (read from path): structure, names, durations,
// labels, and each expr with check (if not nil).
func Validate(path string, data []byte, check ExprCheck) Result {
	v := &validator{path: path, lines: strings.Split(string(data), "\n")}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Result{Errors: []error{ruleset.YAMLError(path, nil, err)}}
	}
	if len(doc.Content) == 0 {
		return v.res
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		v.at(root, "expected a mapping with groups:")
		return v.res
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, val := root.Content[i], root.Content[i+1]
		if k.Value != "groups" {
			v.at(k, "unknown field %q", k.Value)
			continue
		}
		if val.Kind != yaml.SequenceNode {
			v.at(val, "groups: expected a list")
			continue
		}
		seen := map[string]*yaml.Node{}
		for _, g := range val.Content {
			v.group(g, seen, check)
		}
	}
	sort.SliceStable(v.res.Errors, func(i, j int) bool {
		a, b := v.res.Errors[i].(*ruleset.Error), v.res.Errors[j].(*ruleset.Error)
		return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
	})
	return v.res
}

func (v *validator) group(g *yaml.Node, seen map[string]*yaml.Node, check ExprCheck) {
	if g.Kind != yaml.MappingNode {
		v.at(g, "group: expected a mapping")
		return
	}
	var name *yaml.Node
	for i := 0; i+1 < len(g.Content); i += 2 {
		k, val := g.Content[i], g.Content[i+1]
		switch {
		case !groupKeys[k.Value]:
			v.at(k, "unknown field %q in group", k.Value)
		case k.Value == "name":
			name = val
		case k.Value == "interval" || k.Value == "query_offset":
			v.duration(k.Value, val)
		case k.Value == "limit":
			var n int
			if err := val.Decode(&n); err != nil || n < 0 {
				v.at(val, "limit: want a non-negative integer")
			}
		case k.Value == "labels":
			v.labels("labels", val)
		case k.Value == "rules":
			if val.Kind != yaml.SequenceNode {
				if !(val.Kind == yaml.ScalarNode && val.Tag == "!!null") {
					v.at(val, "rules: expected a list")
				}
				continue
			}
			for _, r := range val.Content {
				v.rule(r, check)
			}
		}
	}
	switch {
	case name == nil || name.Value == "":
		v.at(g, "group name is required")
	case seen[name.Value] != nil:
		v.at(name, "group %q: duplicate name (first at line %d)", name.Value, seen[name.Value].Line)
	default:
		seen[name.Value] = name
	}
}

func (v *validator) rule(r *yaml.Node, check ExprCheck) {
	if r.Kind != yaml.MappingNode {
		v.at(r, "rule: expected a mapping")
		return
	}
	v.res.Rules++
	vals := map[string]*yaml.Node{}
	for i := 0; i+1 < len(r.Content); i += 2 {
		k, val := r.Content[i], r.Content[i+1]
		if !ruleKeys[k.Value] {
			v.at(k, "unknown field %q in rule", k.Value)
			continue
		}
		vals[k.Value] = val
	}
	rec, alert := vals["record"], vals["alert"]
	switch {
	case rec != nil && alert != nil:
		v.at(r, "only one of record and alert may be set")
	case rec == nil && alert == nil:
		v.at(r, "one of record or alert is required")
	case rec != nil:
		if !metricNameRE.MatchString(rec.Value) {
			v.at(rec, "record: invalid metric name %q", rec.Value)
		}
		for _, k := range []string{"for", "keep_firing_for", "annotations"} {
			if vals[k] != nil {
				v.at(vals[k], "%s: only alerting rules may have %s", k, k)
			}
		}
	case alert != nil:
		if strings.TrimSpace(alert.Value) == "" {
			v.at(alert, "alert: name is required")
		}
	}
	for _, k := range []string{"for", "keep_firing_for"} {
		if vals[k] != nil {
			v.duration(k, vals[k])
		}
	}
	if vals["labels"] != nil {
		v.labels("labels", vals["labels"])
	}
	if a := vals["annotations"]; a != nil && a.Kind != yaml.MappingNode {
		v.at(a, "annotations: expected a mapping")
	}
	e := vals["expr"]
	if e == nil || strings.TrimSpace(e.Value) == "" {
		n := r
		if e != nil {
			n = e
		}
		v.at(n, "expr is required")
		return
	}
	if check == nil {
		return
	}
	skipped, err := check(e.Value)
	if skipped {
		v.res.Skipped++
		return
	}
	if err != nil {
		var pe interface{ ExprPosition() (int, string) }
		if errors.As(err, &pe) {
			off, msg := pe.ExprPosition()
			if line, col, ok := v.exprPos(e, off); ok {
				v.res.Errors = append(v.res.Errors, &ruleset.Error{File: v.path, Line: line, Col: col, Msg: "expr: " + msg})
				return
			}
		}
		// Block scalars start on the line after the indicator.
		n := *e
		if e.Style == yaml.LiteralStyle || e.Style == yaml.FoldedStyle {
			n.Line++
		}
		v.at(&n, "expr: %v", err)
	}
}

// exprPos maps byte offset off of e.Value to a line and column of the file.
// It does so only where the file holds the value verbatim: a one-line plain
// or quoted scalar without escapes, or a literal block (|); otherwise
// (folded blocks, escapes, multi-line flow scalars) ok is false.
func (v *validator) exprPos(e *yaml.Node, off int) (line, col int, ok bool) {
	val := e.Value
	if off < 0 || off > len(val) {
		return 0, 0, false
	}
	switch e.Style {
	case 0, yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		quote := map[yaml.Style]string{yaml.SingleQuotedStyle: "'", yaml.DoubleQuotedStyle: `"`}[e.Style]
		src, ok := v.fromColumn(e.Line, e.Column)
		if strings.Contains(val, "\n") || !ok || !strings.HasPrefix(src, quote+val+quote) {
			return 0, 0, false
		}
		return e.Line, e.Column + len(quote) + utf8.RuneCountInString(val[:off]), true
	case yaml.LiteralStyle:
		vlines := strings.Split(strings.TrimRight(val, "\n"), "\n")
		indent := ""
		for i, l := range vlines {
			if fl, ok := v.line(e.Line + 1 + i); ok && l != "" && strings.HasSuffix(fl, l) {
				indent = fl[:len(fl)-len(l)]
				break
			}
		}
		if strings.TrimLeft(indent, " ") != "" {
			return 0, 0, false
		}
		for i, l := range vlines {
			fl, ok := v.line(e.Line + 1 + i)
			if !ok || (l == "" && strings.TrimLeft(fl, " ") != "") || (l != "" && fl != indent+l) {
				return 0, 0, false
			}
		}
		before := val[:off]
		n := strings.Count(before, "\n")
		last := before[strings.LastIndexByte(before, '\n')+1:]
		return e.Line + 1 + n, len(indent) + 1 + utf8.RuneCountInString(last), true
	}
	return 0, 0, false
}

// line returns the file's 1-based line n without its line ending.
func (v *validator) line(n int) (string, bool) {
	if n < 1 || n > len(v.lines) {
		return "", false
	}
	return strings.TrimSuffix(v.lines[n-1], "\r"), true
}

// fromColumn returns line n from 1-based character column col on.
func (v *validator) fromColumn(n, col int) (string, bool) {
	l, ok := v.line(n)
	if !ok {
		return "", false
	}
	for i := range l {
		if col == 1 {
			return l[i:], true
		}
		col--
	}
	return "", false
}

func (v *validator) duration(key string, n *yaml.Node) {
	if _, err := model.ParseDuration(n.Value); err != nil {
		v.at(n, "%s: %v", key, err)
	}
}

func (v *validator) labels(key string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		if !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
			v.at(n, "%s: expected a mapping", key)
		}
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !model.UTF8Validation.IsValidLabelName(k.Value) || k.Value == "" {
			v.at(k, "%s: invalid label name %q", key, k.Value)
		}
	}
}
