package config

import (
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/problems"
)

// ConditionConfig is one entry of conditions:. For the five built-in
// types only enabled may be set: their healthy reasons are EKS's, which
// dashboards read. Any other type is a custom type the operator's rules
// and plugins report; it needs its healthy reason.
type ConditionConfig struct {
	Enabled        *bool  `yaml:"enabled,omitempty"`
	HealthyReason  string `yaml:"healthyReason,omitempty"`
	HealthyMessage string `yaml:"healthyMessage,omitempty"`
}

// On reports whether the type is monitored (the default).
func (c ConditionConfig) On() bool { return c.Enabled == nil || *c.Enabled }

// kubeletConditions are the kubelet's own types: writing them would fight
// the kubelet, and the scheduler and node lifecycle act on them.
var kubeletConditions = []string{"Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"}

// checkConditions lists every problem of conditions:.
func (c *Config) checkConditions() []error {
	var errs []error
	for _, t := range slices.Sorted(maps.Keys(c.Conditions)) {
		cc := c.Conditions[t]
		fail := func(format string, args ...any) {
			errs = append(errs, &problems.Problem{File: c.file, Line: c.lines["conditions."+t], Err: fmt.Errorf("conditions.%s: "+format, append([]any{t}, args...)...)})
		}
		switch {
		case slices.Contains(kubeletConditions, t):
			fail("is the kubelet's condition type, which nodehealthd never writes (the kubelet's types are %v)", kubeletConditions)
		case finding.IsCondition(t):
			if cc.HealthyReason != "" || cc.HealthyMessage != "" {
				fail("healthyReason and healthyMessage of a built-in type are fixed (EKS's); only enabled may be set")
			}
		default:
			if !isQualifiedName(t) {
				fail("not a valid condition type: want a Kubernetes qualified name (FooReady, example.com/FooReady)")
			}
			if cc.HealthyReason == "" {
				fail("not one of the five condition types; a custom type needs healthyReason (the reason it shows while True)")
			} else if err := condition.ValidReason(cc.HealthyReason); err != nil {
				fail("healthyReason: %v", err)
			}
		}
	}
	return errs
}

// The API's qualified name (k8s.io/apimachinery's IsQualifiedName, which
// nodehealthctl may not link: cmd/nodehealthd/deps_test.go): an optional
// DNS subdomain prefix and a name of at most 63 characters.
var (
	qualifiedNameRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	dnsSubdomainRE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

func isQualifiedName(s string) bool {
	prefix, name, hasPrefix := strings.Cut(s, "/")
	if !hasPrefix {
		name, prefix = prefix, ""
	}
	if hasPrefix && (len(prefix) > 253 || !dnsSubdomainRE.MatchString(prefix)) {
		return false
	}
	return len(name) <= 63 && qualifiedNameRE.MatchString(name)
}

// DeclaredConditions returns the custom condition types (beyond the five)
// with their healthy reason and message, enabled or not: the daemon owns
// them all, and removes the disabled ones from the Node.
func (c *Config) DeclaredConditions() map[string]condition.Declared {
	out := map[string]condition.Declared{}
	for t, cc := range c.Conditions {
		if finding.IsCondition(t) || slices.Contains(kubeletConditions, t) {
			continue
		}
		msg := cc.HealthyMessage
		if msg == "" {
			msg = "Monitoring for " + t + " is active"
		}
		out[t] = condition.Declared{HealthyReason: cc.HealthyReason, HealthyMessage: msg}
	}
	return out
}

// IsDeclared reports whether t is a condition type rules and plugins may
// report: one of the five or a custom type of conditions:.
func (c *Config) IsDeclared(t string) bool {
	if finding.IsCondition(t) {
		return true
	}
	_, ok := c.DeclaredConditions()[t]
	return ok
}

// DefaultPluginUser runs plugins unless pluginUser says otherwise: it
// exists on every distribution and owns nothing.
const DefaultPluginUser = "nobody"

// PluginUserName is the user plugins run as; "" runs them as the daemon.
func (c *Config) PluginUserName() string {
	if c.PluginUser == nil {
		return DefaultPluginUser
	}
	return *c.PluginUser
}

// PluginFiles returns plugins: with relative paths resolved against the
// config file's directory.
func (c *Config) PluginFiles() []string {
	out := make([]string, len(c.Plugins))
	for i, p := range c.Plugins {
		if !filepath.IsAbs(p) && c.file != "" {
			p = filepath.Join(filepath.Dir(c.file), p)
		}
		out[i] = p
	}
	return out
}
