package ruleset

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// yamlError converts a YAML library error to file:line:col form.
func yamlError(path string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs []error
		for _, m := range te.Errors {
			errs = append(errs, lineError(path, m))
		}
		return errors.Join(errs...)
	}
	return lineError(path, err.Error())
}

func lineError(path, msg string) *Error {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		msg = strings.TrimSpace(strings.Replace(msg, m[0]+":", "", 1))
		return &Error{File: path, Line: line, Col: 1, Msg: msg}
	}
	return &Error{File: path, Line: 1, Col: 1, Msg: msg}
}

var quotedRE = regexp.MustCompile(`"([^"]+)"|'([^']+)'`)

var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

// amErrors turns Alertmanager's rejection of a file into every error the
// file has, each with its position: the line errors of Alertmanager's own
// decode (given a column from the node on that line), and the semantic
// checks of amChecker, which Alertmanager would report one at a time and
// without a position.
func amErrors(path string, root *yaml.Node, err error, o *options) []error {
	c := &amChecker{file: path, root: root}
	c.check()
	c.checkIsolated(o)
	msg := err.Error()
	if strings.Contains(msg, "line ") {
		for _, part := range strings.Split(msg, "\n") {
			part = strings.TrimSpace(part)
			if part == "" || part == "yaml: unmarshal errors:" {
				continue
			}
			e := lineError(path, part)
			if m := unknownFieldRE.FindStringSubmatch(e.Msg); m != nil {
				e.Msg = fmt.Sprintf("unknown field %q", m[1])
				if k := findKeyOnLine(root, m[1], e.Line); k != nil {
					e.Col = k.Column
				}
			} else if n := firstOnLine(root, e.Line); n != nil {
				e.Col = n.Column
			}
			c.errs = append(c.errs, e)
		}
	}
	if len(c.errs) == 0 {
		return []error{amError(path, root, err)}
	}
	sort.SliceStable(c.errs, func(i, j int) bool {
		a, b := c.errs[i], c.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	seen := map[string]bool{}
	var out []error
	for _, e := range c.errs {
		if s := e.Error(); !seen[s] {
			seen[s] = true
			out = append(out, e)
		}
	}
	return out
}

// amError positions a single Alertmanager config error: it names a value,
// which is looked up in the document to find where it is written.
func amError(path string, root *yaml.Node, err error) error {
	msg := err.Error()
	for _, m := range quotedRE.FindAllStringSubmatch(msg, -1) {
		want := m[1] + m[2]
		if n := findScalar(root, want); n != nil {
			return &Error{File: path, Line: n.Line, Col: n.Column, Msg: msg}
		}
	}
	return &Error{File: path, Line: root.Line, Col: root.Column, Msg: msg}
}

// findKeyOnLine returns the mapping key named key written on line.
func findKeyOnLine(n *yaml.Node, key string, line int) *yaml.Node {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Value == key && k.Line == line {
				return k
			}
		}
	}
	for _, c := range n.Content {
		if r := findKeyOnLine(c, key, line); r != nil {
			return r
		}
	}
	return nil
}

// firstOnLine returns the leftmost node that starts on line.
func firstOnLine(n *yaml.Node, line int) *yaml.Node {
	var best *yaml.Node
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Line == line && (best == nil || n.Column < best.Column) {
			best = n
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return best
}

// findScalar returns the first scalar value node equal to s (keys skipped).
func findScalar(n *yaml.Node, s string) *yaml.Node {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == s {
			return n
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if r := findScalar(n.Content[i], s); r != nil {
				return r
			}
		}
	default:
		for _, c := range n.Content {
			if r := findScalar(c, s); r != nil {
				return r
			}
		}
	}
	return nil
}

// YAMLError turns an error of yaml.v3 (syntax, or the type errors of a
// strict decode) into file:line:col errors, joined. root, when not nil, is
// the parsed document: it gives columns to errors that only carry a line.
func YAMLError(path string, root *yaml.Node, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var errs []error
	for _, m := range msgs {
		e := lineError(path, m)
		if root != nil {
			if f := unknownFieldV3RE.FindStringSubmatch(e.Msg); f != nil {
				e.Msg = fmt.Sprintf("unknown field %q", f[1])
				if k := findKeyOnLine(root, f[1], e.Line); k != nil {
					e.Col = k.Column
				}
			} else if n := firstOnLine(root, e.Line); n != nil {
				e.Col = n.Column
			}
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

var unknownFieldV3RE = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
