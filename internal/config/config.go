// Package config reads /etc/nodehealthd/config.yaml: which conditions and
// sources run, per-reason overrides of the rules, and named sets such as
// the NVIDIA XIDs treated as fatal.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/rules"
)

// DefaultPath is where packages install the configuration.
const DefaultPath = "/etc/nodehealthd/config.yaml"

// Config is the whole file. Every field is optional.
type Config struct {
	// RulesDir holds operator rules (*.yaml); default /etc/nodehealthd/rules.d.
	RulesDir string `yaml:"rulesDir,omitempty"`
	// Conditions switches whole condition types off. A disabled type is
	// removed from the Node rather than left stale.
	Conditions map[string]Toggle `yaml:"conditions,omitempty"`
	// Reasons overrides per reason: enabled and severity for any reason
	// (log rules, probes, NVML), threshold and recovery for log rules.
	Reasons map[string]rules.Override `yaml:"reasons,omitempty"`
	// Sets replaces named sets of the rule files (e.g. nvidiaFatalXIDs).
	Sets    map[string][]string `yaml:"sets,omitempty"`
	Sources Sources             `yaml:"sources,omitempty"`
	// Probes configures host probes by probe name; each probe decodes
	// (strictly) its own section.
	Probes map[string]yaml.Node `yaml:"probes,omitempty"`
}

// Toggle is an on/off switch that defaults to on.
type Toggle struct {
	Enabled *bool `yaml:"enabled,omitempty"`
}

// On reports whether the switch is on (the default).
func (t Toggle) On() bool { return t.Enabled == nil || *t.Enabled }

// Sources configures the log readers.
type Sources struct {
	Kmsg    KmsgSource `yaml:"kmsg,omitempty"`
	Journal Toggle     `yaml:"journal,omitempty"`
	Files   Toggle     `yaml:"files,omitempty"`
}

// KmsgSource configures /dev/kmsg reading.
type KmsgSource struct {
	Enabled *bool `yaml:"enabled,omitempty"`
	// Facilities keeps only records of these syslog facilities; empty
	// keeps all (userspace writes to /dev/kmsg carry facility 1).
	Facilities []int `yaml:"facilities,omitempty"`
}

// Load reads path. A missing file is the default configuration; anything
// else that cannot be read or parsed is an error naming the file and line.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(b, path)
}

// Parse decodes a config document strictly (unknown keys are errors, since
// a misspelt override silently doing nothing is worse than a refusal).
func Parse(b []byte, name string) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for t := range c.Conditions {
		if !finding.IsCondition(t) {
			return nil, fmt.Errorf("%s: conditions.%s: not a condition type", name, t)
		}
	}
	return &c, nil
}

// RuleOptions is the part of the config the rule compiler needs.
func (c *Config) RuleOptions() rules.Options {
	return rules.Options{Overrides: c.Reasons, Sets: c.Sets}
}

// Monitored returns the enabled condition types; AcceleratedHardwareReady
// only when the node has accelerators.
func (c *Config) Monitored(accelerated bool) []string {
	var out []string
	for _, t := range finding.Conditions {
		if t == finding.AcceleratedHardwareReady && !accelerated {
			continue
		}
		if c.Conditions[t].On() {
			out = append(out, t)
		}
	}
	return out
}

// DefaultRulesDir is where operator rules live unless configured.
const DefaultRulesDir = "/etc/nodehealthd/rules.d"

// RulesDirFor resolves the operator rules directory: a flag value wins,
// then the config's rulesDir, then the default. A nil config is defaults.
func (c *Config) RulesDirFor(flag string) string {
	switch {
	case flag != "":
		return flag
	case c != nil && c.RulesDir != "":
		return c.RulesDir
	}
	return DefaultRulesDir
}
