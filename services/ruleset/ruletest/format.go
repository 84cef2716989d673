// Package ruletest runs promtool-style unit tests of rule files: input alerts
// and events at given times go through a simulated engine on a simulated
// clock, and the notifications it sends are compared with the expected ones.
// The format is documented in services/ruleset/README.md.
package ruletest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// File is one rule-test file (*_test.yml).
type File struct {
	// RuleFiles are the rule files under test, relative to the test file.
	// Empty means every rule file in the test file's directory.
	RuleFiles []string `yaml:"rule_files"`
	// Tenant the input belongs to; default: the name of the directory.
	Tenant string `yaml:"tenant"`
	// Start is the simulated wall-clock time of "at: 0s" (RFC 3339), which
	// matters for time intervals. Default 2024-01-01T00:00:00Z (a Monday).
	Start string `yaml:"start"`
	Tests []Test `yaml:"tests"`

	path  string
	start time.Time
}

// Test is one scenario, run on a fresh engine.
type Test struct {
	Name   string         `yaml:"name"`
	Input  []Step         `yaml:"input"`
	Expect []Notification `yaml:"expect"`
	// Until is how far the clock runs; default the latest at of input and
	// expect. Notifications after it are not collected.
	Until string `yaml:"until"`

	pos   ruleset.Pos
	until time.Duration
}

// Step is what arrives at one instant.
type Step struct {
	At     string  `yaml:"at"`
	Alerts []Alert `yaml:"alerts"`
	Events []Event `yaml:"events"`

	at time.Duration
}

// Alert is an input alert, or an expected alert of a notification.
type Alert struct {
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
	// Status is firing (default) or resolved.
	Status string `yaml:"status"`
}

// Event is an input event (k8s events, SLO counts, heartbeats).
type Event struct {
	Kind   string            `yaml:"kind"`
	ID     string            `yaml:"id"`
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
	Good   int64             `yaml:"good"`
	Total  int64             `yaml:"total"`
}

// Notification is one expected notification.
type Notification struct {
	At          string            `yaml:"at"`
	Receiver    string            `yaml:"receiver"`
	GroupLabels map[string]string `yaml:"group_labels"`
	// Status is firing if any alert fires, else resolved; default: derived
	// from the alerts.
	Status string  `yaml:"status"`
	Alerts []Alert `yaml:"alerts"`

	pos ruleset.Pos
	at  time.Duration
}

// DefaultStart is the simulated time of "at: 0s" unless a file says.
var DefaultStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// ParseFile reads and validates a rule-test file; every error is
// file:line:col: message, all of them joined.
func ParseFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse validates data read from path.
func Parse(path string, data []byte) (*File, error) {
	f := &File{path: path}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, posError(path, nil, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		n := &doc
		if len(doc.Content) > 0 {
			n = doc.Content[0]
		}
		return nil, errAt(path, n, "expected a mapping with tests:")
	}
	root := doc.Content[0]
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil {
		return nil, posError(path, root, err)
	}
	v := &validator{path: path}
	f.start = DefaultStart
	if f.Start != "" {
		t, err := time.Parse(time.RFC3339, f.Start)
		if err != nil {
			v.at(valueOf(root, "start"), "start: %v", err)
		}
		f.start = t
	}
	if len(f.Tests) == 0 {
		v.at(root, "no tests")
	}
	testsN := valueOf(root, "tests")
	for i := range f.Tests {
		t := &f.Tests[i]
		tn := index(testsN, i)
		t.pos = ruleset.Pos{File: path, Line: tn.Line, Col: tn.Column}
		if t.Name == "" {
			t.Name = fmt.Sprintf("test %d", i+1)
		}
		var last time.Duration
		inN := valueOf(tn, "input")
		for j := range t.Input {
			s := &t.Input[j]
			sn := index(inN, j)
			s.at = v.duration(sn, "at", s.At)
			if s.at < last {
				v.at(valueOf(sn, "at"), "input steps must be in time order (%s after %s)", s.At, model.Duration(last))
			}
			last = max(last, s.at)
			alN := valueOf(sn, "alerts")
			for k, a := range s.Alerts {
				v.alert(index(alN, k), a, true)
			}
			evN := valueOf(sn, "events")
			for k, e := range s.Events {
				if e.Kind == "" {
					v.at(index(evN, k), "event: kind is required")
				}
			}
			if len(s.Alerts) == 0 && len(s.Events) == 0 {
				v.at(sn, "input step has neither alerts nor events")
			}
		}
		exN := valueOf(tn, "expect")
		for j := range t.Expect {
			e := &t.Expect[j]
			en := index(exN, j)
			e.pos = ruleset.Pos{File: path, Line: en.Line, Col: en.Column}
			e.at = v.duration(en, "at", e.At)
			last = max(last, e.at)
			if e.Receiver == "" {
				v.at(en, "expected notification: receiver is required")
			}
			if e.Status != "" && e.Status != "firing" && e.Status != "resolved" {
				v.at(valueOf(en, "status"), "status must be firing or resolved, not %q", e.Status)
			}
			if len(e.Alerts) == 0 {
				v.at(en, "expected notification: alerts is required")
			}
			alN := valueOf(en, "alerts")
			for k, a := range e.Alerts {
				v.alert(index(alN, k), a, false)
			}
		}
		t.until = last
		if t.Until != "" {
			t.until = v.duration(tn, "until", t.Until)
			if t.until < last {
				v.at(valueOf(tn, "until"), "until %s is before the last input or expectation (%s)", t.Until, model.Duration(last))
			}
		}
	}
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return f, nil
}

type validator struct {
	path string
	errs []error
}

func (v *validator) at(n *yaml.Node, format string, args ...any) {
	v.errs = append(v.errs, errAt(v.path, n, format, args...))
}

func (v *validator) duration(parent *yaml.Node, key, s string) time.Duration {
	if s == "" {
		v.at(parent, "%s is required", key)
		return 0
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		v.at(valueOf(parent, key), "%s: %v", key, err)
	}
	return time.Duration(d)
}

func (v *validator) alert(n *yaml.Node, a Alert, input bool) {
	if len(a.Labels) == 0 {
		v.at(n, "alert: labels are required")
	}
	for k := range a.Labels {
		if !model.UTF8Validation.IsValidLabelName(k) {
			v.at(valueOf(n, "labels"), "alert: invalid label name %q", k)
		}
	}
	if a.Status != "" && a.Status != "firing" && a.Status != "resolved" {
		v.at(valueOf(n, "status"), "alert: status must be firing or resolved, not %q", a.Status)
	}
	if !input && len(a.Annotations) > 0 {
		v.at(valueOf(n, "annotations"), "expected alerts are compared by labels and status only")
	}
}

func errAt(path string, n *yaml.Node, format string, args ...any) *ruleset.Error {
	return &ruleset.Error{File: path, Line: max(n.Line, 1), Col: max(n.Column, 1), Msg: fmt.Sprintf(format, args...)}
}

// valueOf returns the value of key in mapping m, or m itself so that an
// error still points somewhere near.
func valueOf(m *yaml.Node, key string) *yaml.Node {
	if m != nil && m.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				return m.Content[i+1]
			}
		}
	}
	if m == nil {
		return &yaml.Node{Line: 1, Column: 1}
	}
	return m
}

// index returns item i of sequence n, or n.
func index(n *yaml.Node, i int) *yaml.Node {
	if n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	if n == nil {
		return &yaml.Node{Line: 1, Column: 1}
	}
	return n
}

func posError(path string, root *yaml.Node, err error) error {
	return ruleset.YAMLError(path, root, err)
}
