package ruleset

import (
	"fmt"
	"regexp"
	"strings"

	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/matcher/compat"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Alertmanager's config package stops at the first error and, for semantic
// errors, gives no position. amChecker re-checks the same rules on a yaml.v3
// Node shadow of the document so every error is reported, each where it is
// written. It only runs when Alertmanager rejected the file, so a check that
// is stricter than Alertmanager's can never reject a file Alertmanager
// accepts.
type amChecker struct {
	file  string
	root  *yaml.Node
	errs  []*Error
	recvs map[string]bool
	tis   map[string]bool
}

func (c *amChecker) at(n *yaml.Node, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)})
}

// mapGet returns the key and value nodes of key in mapping m (nil, nil if
// absent or m is not a mapping).
func mapGet(m *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// seqItems returns the items of a sequence node (nil for anything else).
func seqItems(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

func (c *amChecker) check() {
	c.recvs = map[string]bool{}
	c.tis = map[string]bool{}
	c.checkUnknown(c.root, amConfigType, "")
	_, recvs := mapGet(c.root, "receivers")
	for _, item := range seqItems(recvs) {
		_, name := mapGet(item, "name")
		if name == nil || name.Value == "" {
			c.at(item, "missing name in receiver")
			continue
		}
		if c.recvs[name.Value] {
			c.at(name, "notification config name %q is not unique", name.Value)
		}
		c.recvs[name.Value] = true
	}
	for _, key := range []string{"mute_time_intervals", "time_intervals"} {
		_, tis := mapGet(c.root, key)
		for _, item := range seqItems(tis) {
			_, name := mapGet(item, "name")
			if name == nil || name.Value == "" {
				c.at(item, "missing name in time interval")
				continue
			}
			if c.tis[name.Value] {
				c.at(name, "time interval %q is not unique", name.Value)
			}
			c.tis[name.Value] = true
		}
	}
	rk, route := mapGet(c.root, "route")
	if isNull(route) {
		n := c.root
		if rk != nil {
			n = rk
		}
		c.at(n, "no route provided in config")
	} else {
		c.checkRootRoute(route)
		c.checkRoute(route)
	}
	_, inhibit := mapGet(c.root, "inhibit_rules")
	for _, item := range seqItems(inhibit) {
		c.checkInhibit(item)
	}
}

func (c *amChecker) checkRootRoute(r *yaml.Node) {
	if _, v := mapGet(r, "receiver"); v == nil || v.Value == "" {
		c.at(r, "root route must specify a default receiver")
	}
	for _, k := range []string{"match", "match_re", "matchers"} {
		if kn, v := mapGet(r, k); kn != nil && !isNull(v) && len(v.Content) > 0 {
			c.at(kn, "root route must not have any matchers")
		}
	}
	for _, k := range []string{"mute_time_intervals", "active_time_intervals"} {
		if kn, v := mapGet(r, k); kn != nil && len(v.Content) > 0 {
			c.at(kn, "root route must not have any %s", strings.ReplaceAll(k, "_", " "))
		}
	}
	if kn, v := mapGet(r, "continue"); kn != nil && v.Value == "true" {
		c.at(kn, "cannot have continue in root route")
	}
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func (c *amChecker) checkRoute(r *yaml.Node) {
	if r.Kind != yaml.MappingNode {
		return // a type error, which Alertmanager's own decode reports with its line
	}
	if _, v := mapGet(r, "receiver"); v != nil && v.Value != "" && !c.recvs[v.Value] {
		c.at(v, "undefined receiver %q used in route", v.Value)
	}
	for _, k := range []string{"mute_time_intervals", "active_time_intervals"} {
		_, v := mapGet(r, k)
		for _, ti := range seqItems(v) {
			if !c.tis[ti.Value] {
				c.at(ti, "undefined time interval %q used in route", ti.Value)
			}
		}
	}
	c.checkMatchers(r, "matchers")
	c.checkMatchMap(r, "match", false)
	c.checkMatchMap(r, "match_re", true)
	_, gb := mapGet(r, "group_by")
	seen := map[string]bool{}
	var all, named *yaml.Node
	for _, l := range seqItems(gb) {
		switch {
		case l.Value == "...":
			all = l
		case !compat.IsValidLabelName(model.LabelName(l.Value)):
			c.at(l, "invalid label name %q in group_by list", l.Value)
		case seen[l.Value]:
			c.at(l, "duplicated label %q in group_by", l.Value)
		default:
			named = l
		}
		seen[l.Value] = true
	}
	if all != nil && named != nil {
		c.at(all, "cannot have wildcard group_by (`...`) and other labels at the same time")
	}
	for _, k := range []string{"group_wait", "group_interval", "repeat_interval"} {
		if _, v := mapGet(r, k); v != nil && !isNull(v) {
			d, err := model.ParseDuration(v.Value)
			switch {
			case err != nil:
				c.at(v, "%s: %v", k, err)
			case d == 0 && k != "group_wait":
				c.at(v, "%s cannot be zero", k)
			}
		}
	}
	_, routes := mapGet(r, "routes")
	for _, sub := range seqItems(routes) {
		c.checkRoute(sub)
	}
}

func (c *amChecker) checkInhibit(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for _, side := range []string{"source", "target"} {
		c.checkMatchers(n, side+"_matchers")
		c.checkMatchMap(n, side+"_match", false)
		c.checkMatchMap(n, side+"_match_re", true)
	}
	_, eq := mapGet(n, "equal")
	for _, l := range seqItems(eq) {
		if !compat.IsValidLabelName(model.LabelName(l.Value)) {
			c.at(l, "invalid label name %q in equal list", l.Value)
		}
	}
}

// checkMatchers parses each matcher string where it is written.
func (c *amChecker) checkMatchers(m *yaml.Node, key string) {
	_, v := mapGet(m, key)
	for _, s := range seqItems(v) {
		if _, err := compat.Matchers(s.Value, "config"); err != nil {
			c.at(s, "%s: bad matcher %q: %v", key, s.Value, err)
		}
	}
}

// checkMatchMap checks the older match / match_re maps.
func (c *amChecker) checkMatchMap(m *yaml.Node, key string, re bool) {
	_, v := mapGet(m, key)
	if v == nil || v.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		if !labelNameRE.MatchString(k.Value) {
			c.at(k, "%s: invalid label name %q", key, k.Value)
		}
		if re {
			if _, err := regexp.Compile("^(?:" + val.Value + ")$"); err != nil {
				c.at(val, "%s: invalid regexp %q: %v", key, val.Value, err)
			}
		}
	}
}

// isolated loads one receiver (or time interval) in a minimal configuration
// with the file's global section, so the errors Alertmanager raises deep in
// an integration's config are found for every receiver, not only the first.
// Only errors without a line are kept: line errors come from the full load,
// which has the true lines.
func (c *amChecker) isolated(key string, item *yaml.Node) ([]string, *amconfig.Receiver) {
	doc := &yaml.Node{Kind: yaml.MappingNode}
	add := func(k string, v *yaml.Node) {
		doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, v)
	}
	if gk, g := mapGet(c.root, "global"); gk != nil {
		add("global", g)
	}
	recv := "isolated"
	items := &yaml.Node{Kind: yaml.SequenceNode}
	if key == "receivers" {
		_, name := mapGet(item, "name")
		if name == nil {
			return nil, nil
		}
		recv = name.Value
		items.Content = []*yaml.Node{item}
		add("receivers", items)
	} else {
		add("receivers", &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Value: "name"}, {Kind: yaml.ScalarNode, Value: recv, Style: yaml.DoubleQuotedStyle}}}}})
		items.Content = []*yaml.Node{item}
		add(key, items)
	}
	add("route", &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Value: "receiver"}, {Kind: yaml.ScalarNode, Value: recv, Style: yaml.DoubleQuotedStyle}}})
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, nil
	}
	cfg, err := amconfig.Load(string(b))
	if err == nil {
		if key == "receivers" && len(cfg.Receivers) == 1 {
			return nil, &cfg.Receivers[0]
		}
		return nil, nil
	}
	if strings.Contains(err.Error(), "line ") {
		return nil, nil
	}
	return []string{err.Error()}, nil
}

// checkIsolated runs isolated on every receiver and time interval and
// positions each error at the item, or at the value it quotes if that value
// is written inside the item.
func (c *amChecker) checkIsolated(o *options) {
	for _, key := range []string{"receivers", "time_intervals", "mute_time_intervals"} {
		_, seq := mapGet(c.root, key)
		for _, item := range seqItems(seq) {
			msgs, rcv := c.isolated(key, item)
			if rcv != nil {
				// A receiver that loads alone still gets the caller's checks.
				for _, e := range o.checkReceivers(c.file, c.root, &amconfig.Config{Receivers: []amconfig.Receiver{*rcv}}) {
					c.errs = append(c.errs, e.(*Error))
				}
			}
			for _, msg := range msgs {
				n := item
				for _, m := range quotedRE.FindAllStringSubmatch(msg, -1) {
					if s := findScalar(item, m[1]+m[2]); s != nil {
						n = s
						break
					}
				}
				c.at(n, "%s", msg)
			}
		}
	}
}
