// Package rules holds log rules as data: the schema operators write in
// /etc/nodehealthd/rules.d, the built-in catalogue, validation that reports
// every problem at once, and the engine that turns log records into findings.
package rules

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/problems"
)

// File is one rules YAML document.
type File struct {
	// Sets are named string sets a rule can test a capture against
	// (captureIn); config.yaml may replace them.
	Sets  map[string][]string `yaml:"sets,omitempty"`
	Rules []Rule              `yaml:"rules"`
}

// Rule is one detection rule. See docs/rules.md for the operator's view.
type Rule struct {
	Name         string     `yaml:"name,omitempty"`
	Condition    string     `yaml:"condition"`
	Reason       string     `yaml:"reason"`
	Severity     string     `yaml:"severity"`
	Source       string     `yaml:"source"`
	Identifiers  []string   `yaml:"identifiers,omitempty"`
	Units        []string   `yaml:"units,omitempty"`
	Paths        []string   `yaml:"paths,omitempty"`
	Patterns     []string   `yaml:"patterns"`
	Exclude      []string   `yaml:"exclude,omitempty"`
	CaptureIn    *SetRef    `yaml:"captureIn,omitempty"`
	CaptureNotIn *SetRef    `yaml:"captureNotIn,omitempty"`
	Message      string     `yaml:"message,omitempty"`
	Key          string     `yaml:"key,omitempty"`
	Threshold    *Threshold `yaml:"threshold,omitempty"`
	Recovery     *Recovery  `yaml:"recovery,omitempty"`
	Description  string     `yaml:"description,omitempty"`
	Action       string     `yaml:"action,omitempty"`

	// Origin is "file:line" of the rule, for error messages.
	Origin string `yaml:"-"`
	// file and line make up Origin, for problems.Problem.
	file string
	line int
	// Builtin marks rules from the embedded catalogue.
	Builtin bool `yaml:"-"`
}

// SetRef tests the value of a capture group against a named set.
type SetRef struct {
	Group string `yaml:"group"`
	Set   string `yaml:"set"`
}

// Threshold fires a rule on the Count-th match within Window (per reason
// and key); counting then starts again.
type Threshold struct {
	Count  int      `yaml:"count"`
	Window Duration `yaml:"window"`
}

// Recovery is the YAML form of finding.Recovery for log rules.
type Recovery struct {
	ExpireAfter      Duration `yaml:"expireAfter,omitempty"`
	KeepAcrossReboot bool     `yaml:"keepAcrossReboot,omitempty"`
}

// Duration is a time.Duration written as "10m" in YAML.
type Duration time.Duration

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		// A TypeError, unlike other errors, lets yaml go on to report the
		// document's other problems.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: invalid duration %q: %v", n.Line, s, err)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the Go duration syntax back.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Override is what an operator may change per reason in config.yaml.
type Override struct {
	Enabled   *bool      `yaml:"enabled,omitempty"`
	Severity  string     `yaml:"severity,omitempty"`
	Threshold *Threshold `yaml:"threshold,omitempty"`
	Recovery  *Recovery  `yaml:"recovery,omitempty"`
}

// Options adjusts a compiled rule set.
type Options struct {
	// Overrides by reason. A reason produced by a template (e.g.
	// NvidiaXID79Error) can be named too; it is applied when it fires.
	Overrides map[string]Override
	// Sets replace the named sets of the rule files.
	Sets map[string][]string
	// KnownReasons are reasons that detectors other than rules report
	// (probes, NVML), templates allowed ("${Unit}RepeatedRestart"). An
	// override may name them: the daemon applies enabled and severity to
	// their findings, while threshold and recovery only exist for rules and
	// are refused for a reason no rule produces.
	KnownReasons []string
	// Where locates a config key ("reasons.X", "sets.X") for messages;
	// nil names the config without a line.
	Where func(key string) (file string, line int)
}

// problem reports err as a problem of the config key.
func (o Options) problem(key string, err error) error {
	file, line := "config", 0
	if o.Where != nil {
		file, line = o.Where(key)
	}
	return &problems.Problem{File: file, Line: line, Err: fmt.Errorf("%s: %w", key, err)}
}

// String prints the duration in Go syntax.
func (d Duration) String() string { return time.Duration(d).String() }
