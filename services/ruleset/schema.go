package ruleset

import (
	"reflect"
	"strings"

	amconfig "github.com/prometheus/alertmanager/config"
	"gopkg.in/yaml.v3"
)

var amConfigType = reflect.TypeOf(amconfig.Config{})

// yamlFields maps the YAML keys of struct t (following ,inline fields) to
// their field types. ok is false for structs that are not written as a
// mapping of their own fields (no field carries a yaml tag, e.g.
// timeinterval.TimeRange, which is parsed from start_time/end_time).
func yamlFields(t reflect.Type) (fields map[string]reflect.Type, ok bool) {
	fields = map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, has := f.Tag.Lookup("yaml")
		if !has || !f.IsExported() {
			continue
		}
		ok = true
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				sub, _ := yamlFields(ft)
				for k, v := range sub {
					fields[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields, ok
}

// checkUnknown reports every key of n that the Go type t does not know, as
// Alertmanager's strict decode would, but all of them and with columns.
func (c *amChecker) checkUnknown(n *yaml.Node, t reflect.Type, _ string) {
	if n == nil {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		fields, ok := yamlFields(t)
		if !ok {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, known := fields[k.Value]
			if !known {
				if t == amConfigType && klaxonKeys[k.Value] {
					continue
				}
				c.at(k, "unknown field %q", k.Value)
				continue
			}
			c.checkUnknown(n.Content[i+1], ft, k.Value)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for _, item := range n.Content {
			c.checkUnknown(item, t.Elem(), "")
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 1; i < len(n.Content); i += 2 {
			c.checkUnknown(n.Content[i], t.Elem(), "")
		}
	}
}
