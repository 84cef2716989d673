package ruleset

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
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
	BurnRates   []BurnRate        `yaml:"burn_rates"` // at most MaxBurnRates
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

// MaxBurnRates bounds an SLO's burn_rates: the SLO's stored state holds an
// alert per rule while it is published, and more rules than anyone pages on.
const MaxBurnRates = 64

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
		return &nodeError{n, err.Error()}
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
	if n.Kind != yaml.SequenceNode {
		return &nodeError{n, "expected a list of matcher strings"}
	}
	var errs []error
	for _, item := range n.Content {
		if item.Kind != yaml.ScalarNode {
			errs = append(errs, &nodeError{item, "expected a matcher string"})
			continue
		}
		pm, err := labels.ParseMatchers(item.Value)
		if err != nil {
			errs = append(errs, &nodeError{item, fmt.Sprintf("bad matcher %q: %v", item.Value, err)})
			continue
		}
		*m = append(*m, pm...)
	}
	return errors.Join(errs...)
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
