// Package plugin runs node-problem-detector custom plugins natively: it
// reads NPD's custom-plugin-monitor JSON files as they are and runs each
// rule's script on its interval, with its timeout and the monitor's
// concurrency, turning exit statuses into findings with NPD's meaning
// (0 OK, 1 problem, anything else unknown).
package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/problems"
)

// NPD's defaults for what a monitor's pluginConfig leaves out.
const (
	DefaultInvokeInterval  = 30 * time.Second
	DefaultTimeout         = 5 * time.Second
	DefaultMaxOutputLength = 80
	DefaultConcurrency     = 3
)

// minInterval refuses intervals that would make the daemon spin.
const minInterval = time.Second

// The rule types of NPD: a temporary problem is an event, a permanent one
// a condition.
const (
	Temporary = "temporary"
	Permanent = "permanent"
)

// npdMonitor is the custom-plugin-monitor file as NPD defines it. Fields
// NPD accepts but that nodehealthd does not need are decoded and ignored
// (docs/plugins.md says why); unknown fields are refused, since a
// misspelt timeout silently defaulting is worse than a refusal.
type npdMonitor struct {
	Plugin       string `json:"plugin"`
	PluginConfig struct {
		InvokeInterval  *string `json:"invoke_interval"`
		Timeout         *string `json:"timeout"`
		MaxOutputLength *int    `json:"max_output_length"`
		Concurrency     *int    `json:"concurrency"`
		// Conditions follow every output here (a repeat updates the
		// message), and start True: both settings are moot.
		MessageChangeBasedConditionUpdate *bool `json:"enable_message_change_based_condition_update"`
		SkipInitialStatus                 *bool `json:"skip_initial_status"`
	} `json:"pluginConfig"`
	Source string `json:"source"`
	// Metrics are always exported (nodehealthd_plugin_runs_total).
	MetricsReporting *bool `json:"metricsReporting"`
	// Conditions are NPD's default (healthy) states; nodehealthd takes
	// them from config.yaml conditions:, where the daemon owns them.
	Conditions []struct {
		Type    string `json:"type"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"conditions"`
	Rules []struct {
		Type           string   `json:"type"`
		Condition      string   `json:"condition"`
		Reason         string   `json:"reason"`
		Path           string   `json:"path"`
		Args           []string `json:"args"`
		Timeout        *string  `json:"timeout"`
		InvokeInterval *string  `json:"invoke_interval"`
	} `json:"rules"`
}

// Monitor is one validated custom-plugin-monitor file.
type Monitor struct {
	File            string
	Source          string
	MaxOutputLength int
	Concurrency     int
	Rules           []Rule
}

// Rule is one plugin invocation of a monitor.
type Rule struct {
	Type string
	// Condition is the condition a permanent rule sets False.
	Condition string
	Reason    string
	// Path is absolute: a relative path in the file is relative to the
	// file's directory.
	Path     string
	Args     []string
	Timeout  time.Duration
	Interval time.Duration
}

// Key tells the findings of rules with one condition and reason apart.
func (r Rule) Key() string { return strings.Join(append([]string{r.Path}, r.Args...), " ") }

// Load reads and validates a custom-plugin-monitor file; every problem is
// listed. isCondition says which condition types config.yaml declares.
func Load(path string, isCondition func(string) bool) (*Monitor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &problems.Problem{File: path, Err: fmt.Errorf("read plugin monitor: %w", err)}
	}
	return Parse(b, path, isCondition)
}

// Parse is Load of a file's content.
func Parse(b []byte, path string, isCondition func(string) bool) (*Monitor, error) {
	var m npdMonitor
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, &problems.Problem{File: path, Err: fmt.Errorf("not a custom-plugin-monitor file: %w", err)}
	}
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, &problems.Problem{File: path, Err: fmt.Errorf(format, args...)})
	}
	if m.Plugin != "custom" {
		fail("plugin %q: only NPD's \"custom\" plugin monitors can run", m.Plugin)
	}
	if m.Source == "" {
		fail("source: empty; it names the plugin in findings and metrics")
	}
	duration := func(key string, s *string, def time.Duration) time.Duration {
		if s == nil {
			return def
		}
		d, err := time.ParseDuration(*s)
		if err != nil {
			fail("%s: %v", key, err)
			return def
		}
		return d
	}
	interval := duration("pluginConfig.invoke_interval", m.PluginConfig.InvokeInterval, DefaultInvokeInterval)
	timeout := duration("pluginConfig.timeout", m.PluginConfig.Timeout, DefaultTimeout)
	mon := &Monitor{File: path, Source: m.Source, MaxOutputLength: DefaultMaxOutputLength, Concurrency: DefaultConcurrency}
	if p := m.PluginConfig.MaxOutputLength; p != nil {
		mon.MaxOutputLength = *p
	}
	if p := m.PluginConfig.Concurrency; p != nil {
		mon.Concurrency = *p
	}
	if interval < minInterval {
		fail("pluginConfig.invoke_interval: %v: want at least %v", interval, minInterval)
	}
	if timeout <= 0 {
		fail("pluginConfig.timeout: %v: want a positive duration", timeout)
	}
	if mon.MaxOutputLength < 1 {
		fail("pluginConfig.max_output_length: %d: want at least 1", mon.MaxOutputLength)
	}
	if mon.Concurrency < 1 {
		fail("pluginConfig.concurrency: %d: want at least 1", mon.Concurrency)
	}
	for i, c := range m.Conditions {
		if !isCondition(c.Type) {
			fail("conditions[%d]: type %q is not declared in config.yaml conditions: (with its healthyReason)", i, c.Type)
		}
	}
	if len(m.Rules) == 0 {
		fail("rules: none")
	}
	for i, nr := range m.Rules {
		r := Rule{Type: nr.Type, Condition: nr.Condition, Reason: nr.Reason, Path: nr.Path, Args: nr.Args,
			Timeout:  duration(fmt.Sprintf("rules[%d].timeout", i), nr.Timeout, timeout),
			Interval: duration(fmt.Sprintf("rules[%d].invoke_interval", i), nr.InvokeInterval, interval)}
		rfail := func(format string, args ...any) { fail("rules[%d]: "+format, append([]any{i}, args...)...) }
		switch r.Type {
		case Permanent:
			if !isCondition(r.Condition) {
				rfail("condition %q is not declared in config.yaml conditions: (nor one of the five)", r.Condition)
			}
		case Temporary:
		default:
			rfail("type %q: want temporary or permanent", r.Type)
		}
		if err := condition.ValidReason(r.Reason); err != nil {
			rfail("%v", err)
		}
		// An inherited value was checked with the monitor's.
		if nr.Timeout != nil && (r.Timeout <= 0 || r.Timeout > timeout) {
			rfail("timeout %v: want a positive duration no longer than the monitor's timeout %v (as NPD)", r.Timeout, timeout)
		}
		if nr.InvokeInterval != nil && r.Interval < minInterval {
			rfail("invoke_interval %v: want at least %v", r.Interval, minInterval)
		}
		if r.Path == "" {
			rfail("path: empty")
		} else {
			if !filepath.IsAbs(r.Path) {
				r.Path = filepath.Join(filepath.Dir(path), r.Path)
			}
			if st, err := os.Stat(r.Path); err != nil {
				rfail("path: %v", err)
			} else if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
				rfail("path %s: not an executable file", r.Path)
			}
		}
		mon.Rules = append(mon.Rules, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return mon, nil
}

// LoadAll loads every file; the error lists the problems of all of them.
func LoadAll(paths []string, isCondition func(string) bool) ([]*Monitor, error) {
	var mons []*Monitor
	var errs []error
	sources := map[string]string{}
	for _, p := range paths {
		m, err := Load(p, isCondition)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := sources[m.Source]; dup {
			errs = append(errs, &problems.Problem{File: p, Err: fmt.Errorf("source %q already names the monitor of %s", m.Source, prev)})
			continue
		}
		sources[m.Source] = p
		mons = append(mons, m)
	}
	return mons, errors.Join(errs...)
}
