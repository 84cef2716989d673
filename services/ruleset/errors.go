package ruleset

import (
	"errors"
	"regexp"
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

// amError positions an Alertmanager config error. The YAML ones carry a line;
// the semantic ones ("undefined receiver \"x\" used in route") name a value,
// which is looked up in the document to find where it is written.
func amError(path string, root *yaml.Node, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "line ") {
		var errs []error
		for _, part := range strings.Split(msg, "\n") {
			part = strings.TrimSpace(part)
			if part == "" || part == "yaml: unmarshal errors:" {
				continue
			}
			errs = append(errs, lineError(path, part))
		}
		return errors.Join(errs...)
	}
	for _, m := range quotedRE.FindAllStringSubmatch(msg, -1) {
		want := m[1] + m[2]
		if n := findScalar(root, want); n != nil {
			return &Error{File: path, Line: n.Line, Col: n.Column, Msg: msg}
		}
	}
	return &Error{File: path, Line: root.Line, Col: root.Column, Msg: msg}
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
