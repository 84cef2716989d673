package main

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/klaxon-sh/klaxon/lambdas/alerting"
)

//go:embed default_rules.yaml
var defaultRules []byte

// Config is the filter-rule file, YAML or JSON (JSON is YAML).
type Config struct {
	Rules []Rule `yaml:"rules"`
}

// Rule selects CloudTrail records. Every field named in Match must match one
// of its patterns; a record that also matches Unless is dropped. Patterns
// are exact strings where "*" matches any run of characters; an absent field
// matches only "", so `errorCode: ["*"]` means "the call failed".
type Rule struct {
	Name     string              `yaml:"name"`
	Severity string              `yaml:"severity"`
	Match    map[string][]string `yaml:"match"`
	Unless   map[string][]string `yaml:"unless"`
	// Burst turns the rule into a counter: it fires when Count matching
	// records with the same By fields arrive within Window.
	Burst *Burst `yaml:"burst"`
}

// Burst is a count-over-window condition.
type Burst struct {
	Count  int           `yaml:"count"`
	Window time.Duration `yaml:"window"`
	By     []string      `yaml:"by"`
}

// LoadRules parses and validates a rule file. name prefixes every error, and
// each error carries the line:col of what it is about; all are reported.
func LoadRules(name string, data []byte) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty rule file", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := cfg.validate(name, &doc); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) validate(file string, doc *yaml.Node) error {
	var errs []error
	ruleNodes := seq(mapValue(root(doc), "rules"))
	at := func(n *yaml.Node, format string, args ...any) {
		line, col := 0, 0
		if n != nil {
			line, col = n.Line, n.Column
		}
		errs = append(errs, fmt.Errorf("%s:%d:%d: %s", file, line, col, fmt.Sprintf(format, args...)))
	}
	if len(c.Rules) == 0 {
		at(root(doc), "no rules")
	}
	seen := map[string]bool{}
	for i := range c.Rules {
		r := &c.Rules[i]
		var rn *yaml.Node
		if i < len(ruleNodes) {
			rn = ruleNodes[i]
		}
		if r.Name == "" {
			at(rn, "rules[%d]: name is required", i)
		} else if seen[r.Name] {
			at(mapValue(rn, "name"), "rule %q: duplicate name", r.Name)
		}
		seen[r.Name] = true
		if r.Severity == "" {
			r.Severity = alerting.SeverityWarning
		} else if !alerting.ValidSeverity(r.Severity) {
			at(mapValue(rn, "severity"), "rule %q: severity %q must be critical, error, warning or info", r.Name, r.Severity)
		}
		if len(r.Match) == 0 {
			at(rn, "rule %q: match must name at least one field", r.Name)
		}
		for _, part := range []struct {
			key string
			m   map[string][]string
		}{{"match", r.Match}, {"unless", r.Unless}} {
			for f, pats := range part.m {
				if fields[f] == nil {
					at(mapKey(mapValue(rn, part.key), f), "rule %q: %s: unknown field %q (known: %s)", r.Name, part.key, f, knownFields())
				}
				if len(pats) == 0 {
					at(mapKey(mapValue(rn, part.key), f), "rule %q: %s.%s: no patterns", r.Name, part.key, f)
				}
			}
		}
		if b := r.Burst; b != nil {
			bn := mapValue(rn, "burst")
			if b.Count < 2 {
				at(bn, "rule %q: burst.count must be at least 2", r.Name)
			}
			if b.Window <= 0 {
				at(bn, "rule %q: burst.window must be a positive duration", r.Name)
			}
			for _, f := range b.By {
				if fields[f] == nil {
					at(bn, "rule %q: burst.by: unknown field %q", r.Name, f)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func knownFields() string {
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// yaml.Node helpers: positions for errors.

func root(doc *yaml.Node) *yaml.Node {
	if doc != nil && doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return doc.Content[0]
	}
	return doc
}

func mapKey(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return n
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i]
		}
	}
	return n
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func seq(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

// glob matches s against a pattern whose only metacharacter is "*". Not
// path.Match: ARNs hold "/" and "[", which path.Match treats specially.
// An absent (empty) field matches only the pattern "", so "*" means "present".
func glob(pattern, s string) bool {
	if s == "" {
		return pattern == ""
	}
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}

func matchAll(m map[string][]string, r *ctRecord) bool {
	for f, pats := range m {
		v := r.field(f)
		if !slices.ContainsFunc(pats, func(p string) bool { return glob(p, v) }) {
			return false
		}
	}
	return true
}

// matches reports whether r satisfies the rule's match and not its unless.
func (ru *Rule) matches(r *ctRecord) bool {
	return matchAll(ru.Match, r) && (len(ru.Unless) == 0 || !matchAll(ru.Unless, r))
}

// Bursts counts burst-rule matches. State lives in the Lambda container's
// memory: a burst is detected within one warm container, which sees most of
// the traffic of a quiet account but not all of it when Lambda scales out or
// recycles the container. That trade-off keeps the hot path free of a
// database round trip; see README.md.
type Bursts struct {
	mu   sync.Mutex
	seen map[string][]burstMark // rule + key → matches, oldest first
	// fired: rule + eventID → key, for the events that completed a burst.
	// The same event again (Lambda retrying an invocation whose notice
	// reached nobody) completes it again: the count had started over, and
	// the retry counted 1, so the burst was lost.
	fired map[string]string
	limit int // max keys kept, bounds memory
}

// burstMark is one match: when, and the CloudTrail eventID ("" if none),
// so a retried event is not counted twice.
type burstMark struct {
	at time.Time
	id string
}

// NewBursts returns an empty counter.
func NewBursts() *Bursts {
	return &Bursts{seen: map[string][]burstMark{}, fired: map[string]string{}, limit: 10000}
}

// Observe records a match of rule for r at now and reports whether that
// completes a burst (then the count starts again, so a steady flood alerts
// once per Count matches, not on every record).
func (b *Bursts) Observe(rule *Rule, r *ctRecord, now time.Time) (key string, fired bool) {
	parts := make([]string, 0, len(rule.Burst.By))
	for _, f := range rule.Burst.By {
		parts = append(parts, f+"="+r.field(f))
	}
	key = strings.Join(parts, ",")
	id := rule.Name + "\x00" + key
	b.mu.Lock()
	defer b.mu.Unlock()
	firedBy := rule.Name + "\x00" + r.EventID
	if r.EventID != "" {
		if k, ok := b.fired[firedBy]; ok {
			return k, true
		}
	}
	marks := b.seen[id]
	cutoff := now.Add(-rule.Burst.Window)
	keep := marks[:0]
	for _, m := range marks {
		if m.at.After(cutoff) {
			keep = append(keep, m)
		}
	}
	if r.EventID != "" && slices.ContainsFunc(keep, func(m burstMark) bool { return m.id == r.EventID }) {
		b.seen[id] = keep
		return key, false // counted already
	}
	keep = append(keep, burstMark{at: now, id: r.EventID})
	if len(keep) >= rule.Burst.Count {
		delete(b.seen, id)
		if r.EventID != "" {
			if len(b.fired) >= b.limit {
				clear(b.fired)
			}
			b.fired[firedBy] = key
		}
		return key, true
	}
	// Only the last Count-1 times can matter for the next decision.
	if len(keep) > rule.Burst.Count-1 {
		keep = keep[len(keep)-(rule.Burst.Count-1):]
	}
	b.seen[id] = keep
	if len(b.seen) > b.limit {
		b.prune(now, rule.Burst.Window)
	}
	return key, false
}

// prune drops keys with no match inside window; if that is not enough, it
// drops everything, preferring a missed burst to an out-of-memory container.
func (b *Bursts) prune(now time.Time, window time.Duration) {
	for id, ms := range b.seen {
		if len(ms) == 0 || !ms[len(ms)-1].at.After(now.Add(-window)) {
			delete(b.seen, id)
		}
	}
	if len(b.seen) > b.limit {
		clear(b.seen)
	}
}
