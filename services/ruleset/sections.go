package ruleset

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"

	"github.com/klaxon-sh/klaxon/services/slo"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Policy counts occurrences of matching alerts and events per key over a
// sliding window and fires a derived alert while the count exceeds Threshold.
type Policy struct {
	Name        string            `yaml:"name"`
	Match       Matchers          `yaml:"match"`
	Key         []string          `yaml:"key"`
	Threshold   int               `yaml:"threshold"`
	Window      Duration          `yaml:"window"`
	Lateness    Duration          `yaml:"lateness"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
	Pos         Pos               `yaml:"-"`
}

// Heartbeat is a dead-man switch.
type Heartbeat struct {
	Name        string            `yaml:"name"`
	Match       Matchers          `yaml:"match"`
	Interval    Duration          `yaml:"interval"`
	Grace       Duration          `yaml:"grace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
	Pos         Pos               `yaml:"-"`
}

// SLO declares a service level objective. Objective is kept as the exact
// decimal string written in the file; services/slo parses it exactly.
type SLO struct {
	Name        string            `yaml:"name"`
	Objective   string            `yaml:"objective"`
	Period      Duration          `yaml:"period"`
	BadAlerts   Matchers          `yaml:"bad_alerts"`
	Events      *SLOEvents        `yaml:"events"`
	MinEvents   int64             `yaml:"min_events"`
	TimeZone    string            `yaml:"time_zone"`
	BurnRates   []BurnRate        `yaml:"burn_rates"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
	Pos         Pos               `yaml:"-"`
}

// SLOEvents configures a ratio SLI: counts pushed to the HTTP endpoint, and
// optionally events matched from the stream.
type SLOEvents struct {
	Total Matchers `yaml:"total"`
	Bad   Matchers `yaml:"bad"`
}

// BurnRate overrides one multiwindow burn-rate alert.
type BurnRate struct {
	Severity    string   `yaml:"severity"`
	Factor      string   `yaml:"factor"`
	LongWindow  Duration `yaml:"long_window"`
	ShortWindow Duration `yaml:"short_window"`
}

// Pos is where a section item starts.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Duration accepts Prometheus durations (30s, 15m, 7d, 1w, 1y).
type Duration time.Duration

// UnmarshalYAML parses a Prometheus duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	md, err := model.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(md)
	return nil
}

// String formats like Prometheus.
func (d Duration) String() string { return model.Duration(d).String() }

// Matchers is a list of Alertmanager matcher strings (`name="value"`,
// `name=~"re"`), all of which must match.
type Matchers []*labels.Matcher

// UnmarshalYAML parses each matcher with Alertmanager's parser.
func (m *Matchers) UnmarshalYAML(n *yaml.Node) error {
	var ss []string
	if err := n.Decode(&ss); err != nil {
		return err
	}
	for i, s := range ss {
		pm, err := labels.ParseMatchers(s)
		if err != nil {
			line := n.Line
			if i < len(n.Content) {
				line = n.Content[i].Line
			}
			return fmt.Errorf("line %d: bad matcher %q: %w", line, s, err)
		}
		*m = append(*m, pm...)
	}
	return nil
}

// Matches reports whether every matcher matches lset.
func (m Matchers) Matches(lset map[string]string) bool {
	for _, x := range m {
		if !x.Matches(lset[x.Name]) {
			return false
		}
	}
	return true
}

var sectionNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

func (t *Tenant) decodeSection(path, key string, v *yaml.Node) []error {
	if v.Kind != yaml.SequenceNode {
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			return nil
		}
		return []error{&Error{File: path, Line: v.Line, Col: v.Column, Msg: key + ": expected a list"}}
	}
	var errs []error
	for _, item := range v.Content {
		pos := Pos{File: path, Line: item.Line, Col: item.Column}
		var err error
		switch key {
		case "policies":
			var p Policy
			if err = strictDecode(item, &p); err == nil {
				p.Pos = pos
				errs = append(errs, t.checkPolicy(&p)...)
				t.Policies = append(t.Policies, p)
			}
		case "heartbeats":
			var h Heartbeat
			if err = strictDecode(item, &h); err == nil {
				h.Pos = pos
				errs = append(errs, t.checkHeartbeat(&h)...)
				t.Heartbeats = append(t.Heartbeats, h)
			}
		case "slos":
			var s SLO
			if err = strictDecode(item, &s); err == nil {
				s.Pos = pos
				errs = append(errs, t.checkSLO(&s)...)
				t.SLOs = append(t.SLOs, s)
			}
		}
		if err != nil {
			errs = append(errs, yamlError(path, err))
		}
	}
	return errs
}

// strictDecode rejects unknown fields, as Alertmanager does for its sections.
func strictDecode(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	// Re-decoding loses positions, so shift them back by the node's line.
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return shiftLines(err, n.Line-1)
	}
	return nil
}

var lineNumRE = regexp.MustCompile(`line (\d+)`)

func shiftLines(err error, by int) error {
	msg := lineNumRE.ReplaceAllStringFunc(err.Error(), func(s string) string {
		var n int
		fmt.Sscanf(s, "line %d", &n)
		return fmt.Sprintf("line %d", n+by)
	})
	return fmt.Errorf("%s", strings.TrimPrefix(msg, "yaml: "))
}

func posErr(p Pos, format string, args ...any) error {
	return &Error{File: p.File, Line: p.Line, Col: p.Col, Msg: fmt.Sprintf(format, args...)}
}

func (t *Tenant) checkName(kind, name string, p Pos, seen func(string) bool) []error {
	switch {
	case name == "":
		return []error{posErr(p, "%s: name is required", kind)}
	case !sectionNameRE.MatchString(name):
		return []error{posErr(p, "%s %q: name must match %s", kind, name, sectionNameRE)}
	case seen(name):
		return []error{posErr(p, "%s %q: duplicate name", kind, name)}
	}
	return nil
}

func (t *Tenant) checkPolicy(p *Policy) []error {
	errs := t.checkName("policy", p.Name, p.Pos, func(n string) bool {
		for _, x := range t.Policies {
			if x.Name == n {
				return true
			}
		}
		return false
	})
	if len(p.Match) == 0 {
		errs = append(errs, posErr(p.Pos, "policy %q: match is required", p.Name))
	}
	if p.Threshold < 0 {
		errs = append(errs, posErr(p.Pos, "policy %q: threshold must be >= 0", p.Name))
	}
	if p.Window <= 0 {
		errs = append(errs, posErr(p.Pos, "policy %q: window is required and must be > 0", p.Name))
	}
	if time.Duration(p.Window) > 366*24*time.Hour {
		errs = append(errs, posErr(p.Pos, "policy %q: window must be at most 366d", p.Name))
	}
	if p.Labels["alertname"] == "" {
		errs = append(errs, posErr(p.Pos, "policy %q: labels.alertname is required (it names the derived alert)", p.Name))
	}
	return errs
}

func (t *Tenant) checkHeartbeat(h *Heartbeat) []error {
	errs := t.checkName("heartbeat", h.Name, h.Pos, func(n string) bool {
		for _, x := range t.Heartbeats {
			if x.Name == n {
				return true
			}
		}
		return false
	})
	if h.Interval <= 0 {
		errs = append(errs, posErr(h.Pos, "heartbeat %q: interval is required and must be > 0", h.Name))
	}
	if h.Grace < 0 {
		errs = append(errs, posErr(h.Pos, "heartbeat %q: grace must be >= 0", h.Name))
	}
	return errs
}

func (t *Tenant) checkSLO(s *SLO) []error {
	errs := t.checkName("slo", s.Name, s.Pos, func(n string) bool {
		for _, x := range t.SLOs {
			if x.Name == n {
				return true
			}
		}
		return false
	})
	if s.Objective == "" {
		errs = append(errs, posErr(s.Pos, "slo %q: objective is required (percent, e.g. 99.9)", s.Name))
	} else if _, err := slo.ParseObjective(s.Objective); err != nil {
		errs = append(errs, posErr(s.Pos, "slo %q: %v", s.Name, err))
	}
	for i, br := range s.BurnRates {
		if _, err := slo.ParseFactor(br.Factor); err != nil {
			errs = append(errs, posErr(s.Pos, "slo %q: burn_rates[%d]: %v", s.Name, i, err))
		}
		if br.Severity != slo.SeverityPage && br.Severity != slo.SeverityTicket {
			errs = append(errs, posErr(s.Pos, "slo %q: burn_rates[%d]: severity must be page or ticket", s.Name, i))
		}
		if br.ShortWindow <= 0 || br.LongWindow < br.ShortWindow {
			errs = append(errs, posErr(s.Pos, "slo %q: burn_rates[%d]: need 0 < short_window <= long_window", s.Name, i))
		}
	}
	if s.Period > 0 && (time.Duration(s.Period) < time.Hour || time.Duration(s.Period) > 366*24*time.Hour) {
		errs = append(errs, posErr(s.Pos, "slo %q: period must be between 1h and 366d", s.Name))
	}
	if s.Period <= 0 {
		errs = append(errs, posErr(s.Pos, "slo %q: period is required and must be > 0", s.Name))
	}
	if len(s.BadAlerts) == 0 && s.Events == nil {
		errs = append(errs, posErr(s.Pos, "slo %q: one of bad_alerts (time-slice SLI) or events (ratio SLI) is required", s.Name))
	}
	if len(s.BadAlerts) > 0 && s.Events != nil {
		errs = append(errs, posErr(s.Pos, "slo %q: bad_alerts and events are exclusive", s.Name))
	}
	if s.TimeZone != "" {
		if _, err := time.LoadLocation(s.TimeZone); err != nil {
			errs = append(errs, posErr(s.Pos, "slo %q: time_zone: %v", s.Name, err))
		}
	}
	return errs
}
