package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config says when a heartbeat source is stale.
type Config struct {
	// StaleAfter applies to every source without its own value.
	StaleAfter time.Duration `yaml:"stale_after"`
	// Sources lists the sources that must exist. One that never sent a
	// heartbeat (or whose item expired) is stale too; sources found in the
	// table but not listed here are checked with StaleAfter.
	Sources map[string]SourceConfig `yaml:"sources"`
}

// SourceConfig overrides settings for one source.
type SourceConfig struct {
	StaleAfter time.Duration `yaml:"stale_after"`
	Severity   string        `yaml:"severity"`
}

// LoadConfig parses YAML or JSON; an empty document gives the defaults.
func LoadConfig(name string, data []byte) (*Config, error) {
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if cfg.StaleAfter == 0 {
		cfg.StaleAfter = 5 * time.Minute
	}
	var errs []error
	if cfg.StaleAfter < 0 {
		errs = append(errs, fmt.Errorf("%s: stale_after must be positive", name))
	}
	for src, sc := range cfg.Sources {
		if sc.StaleAfter < 0 {
			errs = append(errs, fmt.Errorf("%s: sources.%s.stale_after must be positive", name, src))
		}
		switch sc.Severity {
		case "", "critical", "error", "warning", "info":
		default:
			errs = append(errs, fmt.Errorf("%s: sources.%s.severity %q must be critical, error, warning or info", name, src, sc.Severity))
		}
	}
	return cfg, errors.Join(errs...)
}

// Expect adds sources that must exist (DEADMAN_SOURCES), with the defaults,
// to those the config lists. Without any, only sources already in the table
// are checked, and a heartbeat that never arrived (a wrong token or URL, a
// missing Alertmanager route) never pages: the switch was never armed.
func (c *Config) Expect(sources []string) {
	for _, src := range sources {
		if src = strings.TrimSpace(src); src == "" {
			continue
		}
		if c.Sources == nil {
			c.Sources = map[string]SourceConfig{}
		}
		if _, ok := c.Sources[src]; !ok {
			c.Sources[src] = SourceConfig{}
		}
	}
}

func (c *Config) staleAfter(source string) time.Duration {
	if sc, ok := c.Sources[source]; ok && sc.StaleAfter > 0 {
		return sc.StaleAfter
	}
	return c.StaleAfter
}

func (c *Config) severity(source string) string {
	if sc, ok := c.Sources[source]; ok && sc.Severity != "" {
		return sc.Severity
	}
	return "critical"
}
