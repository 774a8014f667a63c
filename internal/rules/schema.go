// Package rules holds log rules as data: the schema operators write in
// /etc/nodehealthd/rules.d, the built-in catalogue, validation that reports
// every problem at once, and the engine that turns log records into findings.
package rules

import (
	"fmt"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
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
	Name         string            `yaml:"name,omitempty"`
	Condition    string            `yaml:"condition"`
	Reason       string            `yaml:"reason"`
	Severity     string            `yaml:"severity"`
	Source       string            `yaml:"source"`
	Identifiers  []string          `yaml:"identifiers,omitempty"`
	Units        []string          `yaml:"units,omitempty"`
	Paths        []string          `yaml:"paths,omitempty"`
	Patterns     []string          `yaml:"patterns"`
	Exclude      []string          `yaml:"exclude,omitempty"`
	CaptureIn    *SetRef           `yaml:"captureIn,omitempty"`
	CaptureNotIn *SetRef           `yaml:"captureNotIn,omitempty"`
	Message      string            `yaml:"message,omitempty"`
	Key          string            `yaml:"key,omitempty"`
	Threshold    *policy.Threshold `yaml:"threshold,omitempty"`
	Recovery     *policy.Recovery  `yaml:"recovery,omitempty"`
	Description  string            `yaml:"description,omitempty"`
	Action       string            `yaml:"action,omitempty"`

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

// Options adjusts a compiled rule set.
type Options struct {
	// Policy holds config.yaml's per-reason overrides. The compiler checks
	// them against the reasons the rules and the detectors' declarations
	// (internal/reason) produce, and leaves out the rules whose reason the
	// policy switches off; the policy stage that follows the engine applies
	// the rest. Nil overrides nothing.
	Policy *policy.Policy
	// Sets replace the named sets of the rule files.
	Sets map[string][]string
	// IsCondition accepts the condition types config.yaml declares beyond
	// the five; nil accepts the five only.
	IsCondition func(string) bool
	// Where locates a config key ("reasons.X", "sets.X") for messages;
	// nil names the config without a line.
	Where func(key string) (file string, line int)
}

// isCondition is IsCondition or the five.
func (o Options) isCondition(t string) bool {
	if o.IsCondition != nil {
		return o.IsCondition(t)
	}
	return finding.IsCondition(t)
}

// problem reports err as a problem of the config key.
func (o Options) problem(key string, err error) error {
	file, line := "config", 0
	if o.Where != nil {
		file, line = o.Where(key)
	}
	return &problems.Problem{File: file, Line: line, Err: fmt.Errorf("%s: %w", key, err)}
}
