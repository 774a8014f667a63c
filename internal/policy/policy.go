// Package policy is the one stage between what detects and what remembers.
// Log rules, host probes, NVML and the daemon's own checks emit
// observations: findings as their rule or reason declaration builds them
// by default. The policy alone turns an observation into a finding to
// record: it applies config.yaml's per-reason overrides (enabled,
// severity, threshold, recovery), counts thresholds in windows saved with
// the state, redacts and bounds messages and keys, and stamps the boot.
// The daemon, `nodehealthd --once` and `nodehealthctl test` all call
// Stage.Apply, so an override means the same wherever a finding is made.
package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// Override is what an operator may change per reason in config.yaml
// (reasons.<Reason>), for any reason: a log rule's, a probe's, NVML's.
type Override struct {
	Enabled   *bool      `yaml:"enabled,omitempty"`
	Severity  string     `yaml:"severity,omitempty"`
	Threshold *Threshold `yaml:"threshold,omitempty"`
	Recovery  *Recovery  `yaml:"recovery,omitempty"`
	// Escalate reports a Fatal reason that recurs after reboots as
	// another reason (recur.go).
	Escalate *Escalation `yaml:"escalate,omitempty"`
}

// Threshold makes the Count-th observation within Window (per reason and
// key) a finding; counting then starts again.
type Threshold struct {
	Count  int      `yaml:"count"`
	Window Duration `yaml:"window"`
}

// Check is the validation of a threshold written in a rule or an override.
func (t Threshold) Check() error {
	if t.Count < 1 {
		return errors.New("threshold.count must be at least 1")
	}
	if t.Count > 1 && t.Window <= 0 {
		return errors.New("threshold.window must be positive")
	}
	return nil
}

// Recovery is the YAML form of finding.Recovery's operator settings.
type Recovery struct {
	ExpireAfter      Duration `yaml:"expireAfter,omitempty"`
	KeepAcrossReboot bool     `yaml:"keepAcrossReboot,omitempty"`
}

// Check is the validation of a recovery written in a rule or an override.
func (r Recovery) Check() error {
	if r.ExpireAfter < 0 {
		return errors.New("recovery.expireAfter must not be negative")
	}
	return nil
}

// Finding is r in the form findings carry.
func (r Recovery) Finding() finding.Recovery {
	return finding.Recovery{ExpireAfter: time.Duration(r.ExpireAfter), KeepAcrossReboot: r.KeepAcrossReboot}
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

// String prints the duration in Go syntax.
func (d Duration) String() string { return time.Duration(d).String() }

// Policy is config.yaml's per-reason overrides. A nil *Policy overrides
// nothing. It is immutable once built.
type Policy struct {
	overrides map[string]Override
}

// New returns the policy of overrides, keyed by reason as findings carry it
// (a templated reason is named expanded: NvidiaXID79Error).
func New(overrides map[string]Override) *Policy {
	return &Policy{overrides: maps.Clone(overrides)}
}

func (p *Policy) override(reason string) (Override, bool) {
	if p == nil || len(p.overrides) == 0 {
		return Override{}, false
	}
	ov, ok := p.overrides[reason]
	return ov, ok
}

// Enabled reports whether findings of reason are recorded at all. The rule
// compiler asks it to leave out rules nobody wants, so that they cost
// nothing and their sources are not read.
func (p *Policy) Enabled(reason string) bool {
	ov, ok := p.override(reason)
	return !ok || ov.Enabled == nil || *ov.Enabled
}

// Effective is what the policy makes of a reason's default severity and
// threshold, for listings.
func (p *Policy) Effective(reason string, sev finding.Severity, th Threshold) (finding.Severity, Threshold) {
	sev, th, _, _ = p.apply(reason, sev, th, finding.Recovery{})
	return sev, th
}

// apply is the override of reason applied to its defaults; enabled is
// false when the reason is switched off.
func (p *Policy) apply(reason string, sev finding.Severity, th Threshold, rec finding.Recovery) (_ finding.Severity, _ Threshold, _ finding.Recovery, enabled bool) {
	ov, _ := p.override(reason)
	if ov.Severity != "" {
		sev = finding.Severity(ov.Severity)
	}
	if ov.Threshold != nil {
		th = *ov.Threshold
	}
	if ov.Recovery != nil {
		// A probe's finding stays the probe's to clear as well.
		probe := rec.Probe
		rec = ov.Recovery.Finding()
		rec.Probe = probe
	}
	return sev, th, rec, ov.Enabled == nil || *ov.Enabled
}

// Check reports, in reason order, every override that names a reason known
// does not produce or holds a value that cannot work. problem turns the
// config key ("reasons.X") and the error into the caller's error.
func (p *Policy) Check(known Producers, problem func(key string, err error) error) []error {
	if p == nil {
		return nil
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(p.overrides)) {
		if err := checkOverride(name, p.overrides[name], known); err != nil {
			errs = append(errs, problem("reasons."+name, err))
		}
	}
	return errs
}

func checkOverride(name string, ov Override, known Producers) error {
	prod, ok := known.Produced(name)
	if !ok {
		return errors.New("no rule, probe or NVML check produces this reason")
	}
	var errs []error
	sev := prod.Severity
	if ov.Severity != "" {
		s, err := finding.ParseSeverity(ov.Severity)
		if err != nil {
			errs = append(errs, err)
		} else {
			sev = s
		}
	}
	if ov.Threshold != nil {
		errs = append(errs, ov.Threshold.Check())
	}
	if ov.Recovery != nil {
		errs = append(errs, ov.Recovery.Check())
	}
	if ov.Escalate != nil {
		errs = append(errs, checkEscalation(name, sev, prod.Condition, *ov.Escalate, known))
	}
	return errors.Join(errs...)
}
