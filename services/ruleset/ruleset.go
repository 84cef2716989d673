// Package ruleset loads operator rule files: rules/<tenant>/*.yml, each an
// Alertmanager configuration (parsed by Alertmanager's own config package so
// existing files work unchanged) plus Klaxon's sections (policies, heartbeats,
// slos). Every error names file:line:col.
package ruleset

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	amconfig "github.com/prometheus/alertmanager/config"
	amtemplate "github.com/prometheus/alertmanager/template"
	commoncfg "github.com/prometheus/common/config"
	"gopkg.in/yaml.v3"
)

// Set is every tenant's rules, loaded together so a reload is all or nothing.
type Set struct {
	Dir      string
	Tenants  map[string]*Tenant
	LoadedAt time.Time
}

// Tenant is one tenant's configuration.
type Tenant struct {
	Name string
	// Config is the Alertmanager part. Nil when the tenant has only Klaxon
	// sections; such a tenant's alerts go nowhere but still feed policies.
	Config *amconfig.Config
	// ConfigFile is the file that holds the Alertmanager part.
	ConfigFile string
	Files      []string
	Policies   []Policy
	Heartbeats []Heartbeat
	SLOs       []SLO
}

// Derived says whether any tenant has a policy, heartbeat or SLO: the rules
// that count ingested envelopes besides routing them.
func (s *Set) Derived() bool {
	for _, t := range s.Tenants {
		if len(t.Policies)+len(t.Heartbeats)+len(t.SLOs) > 0 {
			return true
		}
	}
	return false
}

// DefaultResolveTimeout is Alertmanager's global.resolve_timeout default.
const DefaultResolveTimeout = 5 * time.Minute

// ResolveTimeout is the tenant's global.resolve_timeout: how long after it
// was last received an alert without an end resolves (the engine's groups
// and the SLOs' time slices alike).
func (t *Tenant) ResolveTimeout() time.Duration {
	if t != nil && t.Config != nil && t.Config.Global != nil && t.Config.Global.ResolveTimeout != 0 {
		return time.Duration(t.Config.Global.ResolveTimeout)
	}
	return DefaultResolveTimeout
}

// Receiver returns the named receiver of the tenant's Alertmanager config.
func (t *Tenant) Receiver(name string) *amconfig.Receiver {
	if t == nil || t.Config == nil {
		return nil
	}
	for i := range t.Config.Receivers {
		if t.Config.Receivers[i].Name == name {
			return &t.Config.Receivers[i]
		}
	}
	return nil
}

// Error is one validation error with its position.
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// klaxonKeys are the top-level sections that are Klaxon's, not Alertmanager's.
var klaxonKeys = map[string]bool{"policies": true, "heartbeats": true, "slos": true}

// IsRuleFile reports whether name is a tenant rule file (not a rule test and
// not a Loki/Prometheus ruler file, which are told apart by content).
func IsRuleFile(name string) bool {
	ext := filepath.Ext(name)
	if ext != ".yml" && ext != ".yaml" {
		return false
	}
	base := strings.TrimSuffix(filepath.Base(name), ext)
	return !strings.HasSuffix(base, "_test") && !strings.HasPrefix(base, ".")
}

// Load reads every tenant directory under dir. It returns every error found,
// joined; the returned Set is nil when any error was found.
func Load(dir string, opts ...Option) (*Set, error) {
	o := buildOptions(opts)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read rules dir: %w", err)
	}
	set := &Set{Dir: dir, Tenants: map[string]*Tenant{}, LoadedAt: time.Now()}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		t, terrs := o.loadTenant(e.Name(), filepath.Join(dir, e.Name()))
		errs = append(errs, terrs...)
		if t != nil {
			set.Tenants[t.Name] = t
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

// LoadTenant loads one tenant directory.
func LoadTenant(name, dir string, opts ...Option) (*Tenant, []error) {
	return buildOptions(opts).loadTenant(name, dir)
}

func (o *options) loadTenant(name, dir string) (*Tenant, []error) {
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		return nil, []error{err}
	}
	sort.Strings(files)
	return o.loadFiles(name, files)
}

// LoadFiles loads the given rule files as one tenant's rules (rule tests
// name the files they test).
func LoadFiles(name string, files []string, opts ...Option) (*Tenant, []error) {
	return buildOptions(opts).loadFiles(name, files)
}

func (o *options) loadFiles(name string, files []string) (*Tenant, []error) {
	t := &Tenant{Name: name}
	var errs []error
	for _, f := range files {
		if !IsRuleFile(f) {
			continue
		}
		ferrs := t.loadFile(f, o)
		errs = append(errs, ferrs...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return t, nil
}

func (t *Tenant) loadFile(path string, o *options) []error {
	return sortErrors(t.loadFileUnsorted(path, o))
}

// sortErrors orders positioned errors by line and column.
func sortErrors(errs []error) []error {
	sort.SliceStable(errs, func(i, j int) bool {
		a, aok := errs[i].(*Error)
		b, bok := errs[j].(*Error)
		if !aok || !bok {
			return aok && !bok
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return errs
}

func (t *Tenant) loadFileUnsorted(path string, o *options) []error {
	data, err := os.ReadFile(path)
	if err != nil {
		return []error{err}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return []error{yamlError(path, err)}
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return []error{&Error{File: path, Line: root.Line, Col: root.Column, Msg: "expected a mapping at the top level"}}
	}
	// Loki / Prometheus ruler files live beside our rules; `klaxonctl rules
	// lint` validates them, the server ignores them.
	if hasKey(root, "groups") {
		return nil
	}
	t.Files = append(t.Files, path)
	lines := strings.SplitAfter(string(data), "\n")
	var errs []error
	hasAM := false
	for i := 0; i < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if !klaxonKeys[k.Value] {
			hasAM = true
			continue
		}
		errs = append(errs, t.decodeSection(path, k.Value, v)...)
		// Blank the section so Alertmanager's strict parser never sees it, and
		// its own "line N" errors still point at the right lines.
		end := len(lines)
		if i+2 < len(root.Content) {
			end = root.Content[i+2].Line - 1
		}
		for l := k.Line - 1; l < end && l < len(lines); l++ {
			lines[l] = "\n"
		}
	}
	if !hasAM {
		return errs
	}
	if t.Config != nil {
		errs = append(errs, &Error{File: path, Line: root.Line, Col: root.Column,
			Msg: fmt.Sprintf("tenant %q already has its Alertmanager configuration in %s; only one file per tenant may hold route/receivers", t.Name, t.ConfigFile)})
		return errs
	}
	cfg, err := amconfig.Load(strings.Join(lines, ""))
	if err != nil {
		return append(errs, amErrors(path, root, err, o)...)
	}
	if rerrs := o.checkReceivers(path, root, cfg); len(rerrs) > 0 {
		return append(errs, rerrs...)
	}
	resolvePaths(filepath.Dir(path), cfg)
	// The templates are parsed now, as Alertmanager parses them on a
	// reload: a broken .tmpl fails the reload and the last good rules stay.
	// Parsed only when a notification was built, it reloaded as a success
	// and every notification then went to the DLQ as a config error.
	if _, err := amtemplate.FromGlobs(cfg.Templates); err != nil {
		line, col := root.Line, root.Column
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "templates" {
				line, col = root.Content[i].Line, root.Content[i].Column
			}
		}
		return append(errs, &Error{File: path, Line: line, Col: col, Msg: fmt.Sprintf("templates: %v", err)})
	}
	t.Config = cfg
	t.ConfigFile = path
	return errs
}

func hasKey(m *yaml.Node, key string) bool {
	for i := 0; i < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return true
		}
	}
	return false
}

// resolvePaths makes relative template and credential paths relative to the
// rule file, as Alertmanager's LoadFile does (its helper is unexported). It
// walks the receivers by reflection so new integrations are covered too.
func resolvePaths(dir string, cfg *amconfig.Config) {
	// Absolute, so resolving is idempotent: receivers share the global
	// http_config's pointer, and each SetDirectory of a relative dir joined
	// it again (rules/t/rules/t/token with the default --rules=rules).
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	for i, tf := range cfg.Templates {
		if tf != "" && !filepath.IsAbs(tf) {
			cfg.Templates[i] = filepath.Join(dir, tf)
		}
	}
	if cfg.Global != nil && cfg.Global.HTTPConfig != nil {
		cfg.Global.HTTPConfig.SetDirectory(dir)
	}
	for i := range cfg.Receivers {
		setDirs(reflect.ValueOf(&cfg.Receivers[i]), dir, 0)
	}
}

var httpConfigType = reflect.TypeOf(&commoncfg.HTTPClientConfig{})

func setDirs(v reflect.Value, dir string, depth int) {
	if depth > 6 || !v.IsValid() {
		return
	}
	if v.Type() == httpConfigType {
		if !v.IsNil() {
			v.Interface().(*commoncfg.HTTPClientConfig).SetDirectory(dir)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			setDirs(v.Elem(), dir, depth+1)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			setDirs(v.Index(i), dir, depth+1)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				setDirs(v.Field(i), dir, depth+1)
			}
		}
	}
}
