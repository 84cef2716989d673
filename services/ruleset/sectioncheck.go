package ruleset

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/klaxon-sh/klaxon/services/slo"
)

// nodeError is a decode error that knows the node it is about; custom
// unmarshalers return it so the error lands on the exact line and column.
type nodeError struct {
	node *yaml.Node
	msg  string
}

// MaxPolicyThreshold bounds a window policy's threshold: a key keeps the
// times of its newest threshold+1 occurrences, one KV value of about 17
// bytes each. 10,000 keeps a key's value near 170 KB, well inside an
// external NATS server's default max_payload of 1 MiB; past that the
// key's write failed, and its state was dropped as corrupt, every time.
const MaxPolicyThreshold = 10000

func (e *nodeError) Error() string { return e.msg }

var yamlPrefixRE = regexp.MustCompile(`^(yaml: )?(unmarshal errors:\s*)?(line \d+: )?`)

// fields is the shadow of one section item: each key's value node, so a
// check can point at the value it rejects.
type fields struct {
	file string
	item *yaml.Node
	vals map[string]*yaml.Node
	bad  map[string]bool // keys whose value did not decode (already reported)
}

// pos returns where key's value is written, or the item when key is absent.
func (f *fields) pos(key string) Pos {
	n := f.item
	if v := f.vals[key]; v != nil {
		n = v
	}
	return Pos{File: f.file, Line: n.Line, Col: n.Column}
}

// labelPos returns where labels.<name> is written, else where labels is.
func (f *fields) labelPos(key, name string) Pos {
	if _, v := mapGet(f.vals[key], name); v != nil {
		return Pos{File: f.file, Line: v.Line, Col: v.Column}
	}
	return f.pos(key)
}

// decodeItem decodes mapping node item into the struct pointed to by v one
// field at a time, so every unknown key and every bad value is reported (not
// only the first) at its own position, like Prometheus' rulefmt.
func decodeItem(file string, item *yaml.Node, v any) (*fields, []error) {
	f := &fields{file: file, item: item, vals: map[string]*yaml.Node{}, bad: map[string]bool{}}
	if item.Kind != yaml.MappingNode {
		return f, []error{&Error{File: file, Line: item.Line, Col: item.Column, Msg: "expected a mapping"}}
	}
	rv := reflect.ValueOf(v).Elem()
	byKey := map[string]reflect.Value{}
	for i := 0; i < rv.NumField(); i++ {
		name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			byKey[name] = rv.Field(i)
		}
	}
	var errs []error
	for i := 0; i+1 < len(item.Content); i += 2 {
		k, val := item.Content[i], item.Content[i+1]
		fv, ok := byKey[k.Value]
		if !ok {
			errs = append(errs, &Error{File: file, Line: k.Line, Col: k.Column, Msg: fmt.Sprintf("unknown field %q", k.Value)})
			continue
		}
		f.vals[k.Value] = val
		if err := val.Decode(fv.Addr().Interface()); err != nil {
			errs = append(errs, decodeErrors(file, k.Value, val, err)...)
			f.bad[k.Value] = true
		}
		// Nested structs (events, burn_rates) are strict too.
		c := &amChecker{file: file}
		c.checkUnknown(val, fv.Type(), k.Value)
		for _, e := range c.errs {
			errs = append(errs, e)
		}
	}
	return f, errs
}

// decodeErrors positions the errors of decoding val (the value of key).
func decodeErrors(file, key string, val *yaml.Node, err error) []error {
	var out []error
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var ne *nodeError
		if errors.As(err, &ne) {
			out = append(out, &Error{File: file, Line: ne.node.Line, Col: ne.node.Column, Msg: key + ": " + ne.msg})
			return
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, m := range te.Errors {
				e := lineError(file, m)
				e.Msg = key + ": " + e.Msg
				if n := firstOnLine(val, e.Line); n != nil {
					e.Col = n.Column
				} else {
					e.Line, e.Col = val.Line, val.Column
				}
				out = append(out, e)
			}
			return
		}
		msg := yamlPrefixRE.ReplaceAllString(err.Error(), "")
		out = append(out, &Error{File: file, Line: val.Line, Col: val.Column, Msg: key + ": " + msg})
	}
	walk(err)
	return out
}

var sectionNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

func (t *Tenant) decodeSection(path, key string, v *yaml.Node) []error {
	if v.Kind != yaml.SequenceNode {
		if isNull(v) {
			return nil
		}
		return []error{&Error{File: path, Line: v.Line, Col: v.Column, Msg: key + ": expected a list"}}
	}
	var errs []error
	for _, item := range v.Content {
		pos := Pos{File: path, Line: item.Line, Col: item.Column}
		switch key {
		case "policies":
			var p Policy
			f, derrs := decodeItem(path, item, &p)
			p.Pos = pos
			errs = append(errs, derrs...)
			errs = append(errs, t.checkPolicy(&p, f)...)
			t.Policies = append(t.Policies, p)
		case "heartbeats":
			var h Heartbeat
			f, derrs := decodeItem(path, item, &h)
			h.Pos = pos
			errs = append(errs, derrs...)
			errs = append(errs, t.checkHeartbeat(&h, f)...)
			t.Heartbeats = append(t.Heartbeats, h)
		case "slos":
			var s SLO
			f, derrs := decodeItem(path, item, &s)
			s.Pos = pos
			errs = append(errs, derrs...)
			errs = append(errs, t.checkSLO(&s, f)...)
			t.SLOs = append(t.SLOs, s)
		}
	}
	return errs
}

func posErr(p Pos, format string, args ...any) error {
	return &Error{File: p.File, Line: p.Line, Col: p.Col, Msg: fmt.Sprintf(format, args...)}
}

func (t *Tenant) checkName(kind, name string, f *fields, seen func(string) (Pos, bool)) []error {
	p := f.pos("name")
	switch {
	case name == "":
		return []error{posErr(p, "%s: name is required", kind)}
	case !sectionNameRE.MatchString(name):
		return []error{posErr(p, "%s %q: name must match %s", kind, name, sectionNameRE)}
	}
	if first, dup := seen(name); dup {
		return []error{posErr(p, "%s %q: duplicate name (first defined at %s)", kind, name, first)}
	}
	return nil
}

// checkLabels checks label names (and that values are valid UTF-8) of a
// labels or annotations map.
func checkLabels(what string, m map[string]string, f *fields) []error {
	var errs []error
	for k, v := range m {
		if !model.UTF8Validation.IsValidLabelName(k) {
			errs = append(errs, posErr(f.labelPos(what, k), "%s: invalid label name %q", what, k))
		}
		if !model.LabelValue(v).IsValid() {
			errs = append(errs, posErr(f.labelPos(what, k), "%s.%s: value is not valid UTF-8", what, k))
		}
	}
	return errs
}

const maxWindow = 366 * 24 * time.Hour

func (t *Tenant) checkPolicy(p *Policy, f *fields) []error {
	errs := t.checkName("policy", p.Name, f, func(n string) (Pos, bool) {
		for _, x := range t.Policies {
			if x.Name == n {
				return x.Pos, true
			}
		}
		return Pos{}, false
	})
	if _, ok := f.vals["match"]; !ok {
		errs = append(errs, posErr(f.pos("match"), "policy %q: match is required", p.Name))
	}
	for i, k := range p.Key {
		if !model.UTF8Validation.IsValidLabelName(k) { // UTF-8 names, as Alertmanager
			n := f.vals["key"]
			pos := f.pos("key")
			if n != nil && i < len(n.Content) {
				pos = Pos{File: f.file, Line: n.Content[i].Line, Col: n.Content[i].Column}
			}
			errs = append(errs, posErr(pos, "policy %q: key: invalid label name %q", p.Name, k))
		}
	}
	if p.Threshold < 0 {
		errs = append(errs, posErr(f.pos("threshold"), "policy %q: threshold must be >= 0", p.Name))
	} else if p.Threshold > MaxPolicyThreshold {
		errs = append(errs, posErr(f.pos("threshold"), "policy %q: threshold must be at most %d (count larger numbers with an SLO or a Prometheus rule)", p.Name, MaxPolicyThreshold))
	}
	if f.bad["window"] {
		// reported by decode
	} else if _, ok := f.vals["window"]; ok {
		if time.Duration(p.Window) < time.Second {
			// Windows run from 1s to 366d: a sub-second window is a typo
			// (500ms for 500m), not a policy anyone can act on.
			errs = append(errs, posErr(f.pos("window"), "policy %q: window must be at least 1s", p.Name))
		} else if time.Duration(p.Window) > maxWindow {
			errs = append(errs, posErr(f.pos("window"), "policy %q: window must be at most 366d", p.Name))
		}
	} else {
		errs = append(errs, posErr(f.pos("window"), "policy %q: window is required", p.Name))
	}
	if p.Lateness < 0 {
		errs = append(errs, posErr(f.pos("lateness"), "policy %q: lateness must be >= 0", p.Name))
	}
	if p.Labels["alertname"] == "" {
		errs = append(errs, posErr(f.pos("labels"), "policy %q: labels.alertname is required (it names the derived alert)", p.Name))
	}
	errs = append(errs, checkLabels("labels", p.Labels, f)...)
	return errs
}

func (t *Tenant) checkHeartbeat(h *Heartbeat, f *fields) []error {
	errs := t.checkName("heartbeat", h.Name, f, func(n string) (Pos, bool) {
		for _, x := range t.Heartbeats {
			if x.Name == n {
				return x.Pos, true
			}
		}
		return Pos{}, false
	})
	if f.bad["interval"] {
		// reported by decode
	} else if _, ok := f.vals["interval"]; !ok {
		errs = append(errs, posErr(f.pos("interval"), "heartbeat %q: interval is required", h.Name))
	} else if h.Interval <= 0 {
		errs = append(errs, posErr(f.pos("interval"), "heartbeat %q: interval must be > 0", h.Name))
	}
	if h.Grace < 0 {
		errs = append(errs, posErr(f.pos("grace"), "heartbeat %q: grace must be >= 0", h.Name))
	}
	errs = append(errs, checkLabels("labels", h.Labels, f)...)
	return errs
}

func (t *Tenant) checkSLO(s *SLO, f *fields) []error {
	errs := t.checkName("slo", s.Name, f, func(n string) (Pos, bool) {
		for _, x := range t.SLOs {
			if x.Name == n {
				return x.Pos, true
			}
		}
		return Pos{}, false
	})
	switch {
	case s.Objective == "":
		errs = append(errs, posErr(f.pos("objective"), "slo %q: objective is required (percent, e.g. 99.9)", s.Name))
	default:
		// services/slo parses objectives exactly; validate with the same code.
		if _, err := slo.ParseObjective(s.Objective); err != nil {
			errs = append(errs, posErr(f.pos("objective"), "slo %q: %v", s.Name, err))
		}
	}
	if f.bad["period"] {
		// reported by decode
	} else if _, ok := f.vals["period"]; !ok {
		errs = append(errs, posErr(f.pos("period"), "slo %q: period is required", s.Name))
	} else if p := time.Duration(s.Period); p < time.Hour || p > maxWindow {
		errs = append(errs, posErr(f.pos("period"), "slo %q: period must be between 1h and 366d", s.Name))
	}
	_, hasBad := f.vals["bad_alerts"]
	_, hasEvents := f.vals["events"]
	if !hasBad && !hasEvents {
		errs = append(errs, posErr(f.pos("name"), "slo %q: one of bad_alerts (time-slice SLI) or events (ratio SLI) is required", s.Name))
	}
	if hasBad && hasEvents {
		errs = append(errs, posErr(f.pos("events"), "slo %q: bad_alerts and events are exclusive", s.Name))
	}
	if s.MinEvents < 0 {
		errs = append(errs, posErr(f.pos("min_events"), "slo %q: min_events must be >= 0", s.Name))
	}
	if s.TimeZone != "" && !f.bad["time_zone"] {
		if _, err := time.LoadLocation(s.TimeZone); err != nil {
			errs = append(errs, posErr(f.pos("time_zone"), "slo %q: time_zone: %v", s.Name, err))
		}
	}
	if len(s.BurnRates) > MaxBurnRates {
		errs = append(errs, posErr(f.pos("burn_rates"), "slo %q: burn_rates: %d rules, at most %d", s.Name, len(s.BurnRates), MaxBurnRates))
	}
	brs := seqItems(f.vals["burn_rates"])
	for i, br := range s.BurnRates {
		p := f.pos("burn_rates")
		var item *yaml.Node
		if i < len(brs) {
			item = brs[i]
			p = Pos{File: f.file, Line: item.Line, Col: item.Column}
		}
		at := func(key string) Pos {
			if _, v := mapGet(item, key); v != nil {
				return Pos{File: f.file, Line: v.Line, Col: v.Column}
			}
			return p
		}
		if br.Severity != slo.SeverityPage && br.Severity != slo.SeverityTicket {
			errs = append(errs, posErr(at("severity"), "slo %q: burn_rates[%d]: severity must be page or ticket", s.Name, i))
		}
		if _, err := slo.ParseFactor(br.Factor); err != nil {
			errs = append(errs, posErr(at("factor"), "slo %q: burn_rates[%d]: %v", s.Name, i, err))
		}
		if br.ShortWindow <= 0 || br.LongWindow <= 0 || br.ShortWindow > br.LongWindow {
			errs = append(errs, posErr(at("short_window"), "slo %q: burn_rates[%d]: need 0 < short_window <= long_window", s.Name, i))
		}
		if time.Duration(br.LongWindow) > maxWindow {
			errs = append(errs, posErr(at("long_window"), "slo %q: burn_rates[%d]: long_window must be at most 366d", s.Name, i))
		}
	}
	errs = append(errs, checkLabels("labels", s.Labels, f)...)
	return errs
}
