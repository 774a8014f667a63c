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
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/problems"
	"github.com/nodehealthd/nodehealthd/internal/rules"
)

// DefaultPath is where packages install the configuration.
const DefaultPath = "/etc/nodehealthd/config.yaml"

// Config is the whole file. Every field is optional.
type Config struct {
	// RulesDir holds operator rules (*.yaml); default /etc/nodehealthd/rules.d.
	RulesDir string `yaml:"rulesDir,omitempty"`
	// Conditions switches whole condition types off and declares custom
	// types (conditions.go). A disabled or undeclared type of ours is
	// removed from the Node rather than left stale.
	Conditions map[string]ConditionConfig `yaml:"conditions,omitempty"`
	// Plugins are node-problem-detector custom-plugin-monitor JSON files
	// (internal/plugin); relative paths are relative to this file.
	Plugins []string `yaml:"plugins,omitempty"`
	// PluginUser is the user plugins run as; unset is DefaultPluginUser,
	// "" the daemon's own user.
	PluginUser *string `yaml:"pluginUser,omitempty"`
	// Reasons overrides per reason (log rules, probes, NVML alike):
	// enabled, severity, threshold, recovery (internal/policy).
	Reasons map[string]policy.Override `yaml:"reasons,omitempty"`
	// Sets replaces named sets of the rule files (e.g. nvidiaFatalXIDs).
	Sets    map[string][]string `yaml:"sets,omitempty"`
	Sources Sources             `yaml:"sources,omitempty"`
	// Probes switches the host probes and configures each by name.
	Probes ProbesConfig `yaml:"probes,omitempty"`
	// Diagnostics configures automatic bundles and the console summary.
	Diagnostics Diagnostics `yaml:"diagnostics,omitempty"`
	// Cluster tunes publishing to the API server.
	Cluster ClusterSettings `yaml:"cluster,omitempty"`
	// NVML tunes the GPU checks on NVIDIA nodes.
	NVML NVMLSettings `yaml:"nvml,omitempty"`
	// MemoryLimit is the daemon's soft memory limit (see MemoryLimitBytes):
	// "48MiB", "1GiB", "off". Empty is DefaultMemoryLimit.
	MemoryLimit string `yaml:"memoryLimit,omitempty"`
	// GCPercent is the garbage collector's target (GOGC): how much the
	// heap may grow over what survived the last collection before the
	// next one. Unset is DefaultGCPercent; see GCPercentValue.
	GCPercent *int `yaml:"gcPercent,omitempty"`
	// HousekeepingInterval is how often the daemon expires findings, looks
	// for operator requests and a removed state directory, and shows
	// itself alive to /readyz and the systemd watchdog; 0 is the daemon's
	// default. See MaxHousekeepingInterval.
	HousekeepingInterval time.Duration `yaml:"housekeepingInterval,omitempty"`

	// file and lines locate keys ("reasons.X") for messages.
	file  string
	lines map[string]int
}

// Toggle is an on/off switch that defaults to on.
type Toggle struct {
	Enabled *bool `yaml:"enabled,omitempty"`
}

// On reports whether the switch is on (the default).
func (t Toggle) On() bool { return t.Enabled == nil || *t.Enabled }

// ProbesConfig is the probes section: `enabled` switches every host probe
// (it reloads like any other key), every other key is a probe's name and
// its section, which that probe decodes strictly itself.
type ProbesConfig struct {
	Toggle   `yaml:",inline"`
	Sections map[string]yaml.Node `yaml:",inline"`
}

// MaxHousekeepingInterval bounds housekeepingInterval: /readyz fails after
// two minutes without a tick.
const MaxHousekeepingInterval = time.Minute

// Sources configures the log readers.
type Sources struct {
	Kmsg    KmsgSource    `yaml:"kmsg,omitempty"`
	Journal JournalSource `yaml:"journal,omitempty"`
	Files   FilesSource   `yaml:"files,omitempty"`
}

// JournalSource configures the journal reader.
type JournalSource struct {
	Toggle `yaml:",inline"`
	// PollInterval: the journal is read this often even though sd-journal
	// reported no change; 0 is the reader's default.
	PollInterval time.Duration `yaml:"pollInterval,omitempty"`
}

// FilesSource configures the log file tailer. Its intervals are the safety
// net for the changes inotify does not report; 0 is the tailer's default.
type FilesSource struct {
	Toggle `yaml:",inline"`
	// PollInterval: every file is read this often even though no event
	// named it.
	PollInterval time.Duration `yaml:"pollInterval,omitempty"`
	// RescanInterval: the patterns are expanded, and the watched
	// directories redone, this often even though no event asked for it.
	RescanInterval time.Duration `yaml:"rescanInterval,omitempty"`
}

// KmsgSource configures /dev/kmsg reading.
type KmsgSource struct {
	Toggle `yaml:",inline"`
	// Facilities keeps only records of these syslog facilities; empty
	// keeps all (userspace writes to /dev/kmsg carry facility 1).
	Facilities []int `yaml:"facilities,omitempty"`
}

// Load reads path. A missing file is the default configuration; anything
// else that cannot be read or parsed is an error listing every problem,
// each with the file and line (problems.Problem). On error the Config
// still holds what could be decoded, defaults for the rest, so that
// validation can go on to the rules.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return &Config{}, fmt.Errorf("read config: %w", err)
	}
	return Parse(b, path)
}

// Parse decodes a config document strictly (unknown keys are errors, since
// a misspelt override silently doing nothing is worse than a refusal). It
// returns what it could decode along with the error, as Load.
func Parse(b []byte, name string) (*Config, error) {
	c := &Config{file: name}
	// The untyped tree gives the keys' lines; it is also where a syntax
	// error is found.
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return c, errors.Join(problems.FromYAML(name, err)...)
	}
	c.lines = keyLines(&doc)
	var errs []error
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		errs = problems.FromYAML(name, err)
		if _, partial := errors.AsType[*yaml.TypeError](err); !partial {
			return &Config{file: name}, errors.Join(errs...)
		}
	}
	if _, err := c.MemoryLimitBytes(); err != nil {
		errs = append(errs, &problems.Problem{File: name, Line: c.lines["memoryLimit"], Err: err})
	}
	if _, err := c.GCPercentValue(); err != nil {
		errs = append(errs, &problems.Problem{File: name, Line: c.lines["gcPercent"], Err: err})
	}
	errs = append(errs, c.checkIntervals()...)
	errs = append(errs, c.checkConditions()...)
	if key, err := c.Cluster.Check(); err != nil {
		errs = append(errs, &problems.Problem{File: name, Line: c.lines["cluster."+key], Err: fmt.Errorf("cluster.%s: %w", key, err)})
	}
	if key, err := c.Diagnostics.validate(); err != nil {
		errs = append(errs, &problems.Problem{File: name, Line: c.lines["diagnostics."+key], Err: fmt.Errorf("diagnostics.%s: %w", key, err)})
	}
	return c, errors.Join(errs...)
}

// checkIntervals refuses intervals that would spin the daemon or stall its
// readiness.
func (c *Config) checkIntervals() []error {
	var errs []error
	check := func(key, lineKey string, d, max time.Duration) {
		if d == 0 || (d >= time.Second && (max == 0 || d <= max)) {
			return
		}
		want := "at least 1s"
		if max > 0 {
			want = fmt.Sprintf("between 1s and %v", max)
		}
		errs = append(errs, &problems.Problem{File: c.file, Line: c.lines[lineKey], Err: fmt.Errorf("%s: %v: want %s", key, d, want)})
	}
	check("housekeepingInterval", "housekeepingInterval", c.HousekeepingInterval, MaxHousekeepingInterval)
	check("nvml.interval", "nvml.interval", c.NVML.Interval, 0)
	check("sources.journal.pollInterval", "sources.journal", c.Sources.Journal.PollInterval, 0)
	check("sources.files.pollInterval", "sources.files", c.Sources.Files.PollInterval, 0)
	check("sources.files.rescanInterval", "sources.files", c.Sources.Files.RescanInterval, 0)
	return errs
}

// keyLines maps "key" and "key.subkey" of a document to their lines.
func keyLines(doc *yaml.Node) map[string]int {
	lines := map[string]int{}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return lines
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		lines[k.Value] = k.Line
		if v.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(v.Content); j += 2 {
			lines[k.Value+"."+v.Content[j].Value] = v.Content[j].Line
		}
	}
	return lines
}

// where locates a key of keyLines for rule compile errors.
func (c *Config) where(key string) (string, int) { return c.file, c.lines[key] }

// RuleOptions is the part of the config the rule compiler needs.
func (c *Config) RuleOptions() rules.Options {
	opts := rules.Options{Policy: policy.New(c.Reasons), Sets: c.Sets, IsCondition: c.IsDeclared}
	if c.file != "" {
		opts.Where = c.where
	}
	return opts
}

// Monitored returns the enabled condition types, the five first;
// AcceleratedHardwareReady only when the node has accelerators.
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
	for _, t := range slices.Sorted(maps.Keys(c.DeclaredConditions())) {
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

// DefaultMemoryLimit is the soft memory limit without memoryLimit in the
// config: above what the daemon uses under a log flood (docs/performance.md),
// below the unit's MemoryHigh=, so that the garbage collector works harder
// before the kernel reclaims from, and then throttles, the daemon.
const DefaultMemoryLimit = 48 << 20

// DefaultGCPercent is GCPercent's default. Go's own 100 lets an idle
// daemon's 2 MiB of live heap sit in 4 MiB, and a log flood's garbage
// grow it further; at 50 the idle daemon holds about 1 MiB less and the
// flood's peak RSS about 1.5 MiB less, for a few percent more CPU per line
// (measured in docs/performance.md).
const DefaultGCPercent = 50

// GC targets outside these would make the collector run without pause
// (CPU) or let garbage grow to several times the live heap (memory).
const (
	minGCPercent = 10
	maxGCPercent = 400
)

// GCPercentValue is gcPercent, or DefaultGCPercent when it is unset.
func (c *Config) GCPercentValue() (int, error) {
	if c == nil || c.GCPercent == nil {
		return DefaultGCPercent, nil
	}
	if v := *c.GCPercent; v < minGCPercent || v > maxGCPercent {
		return 0, fmt.Errorf("gcPercent %d: want %d to %d", v, minGCPercent, maxGCPercent)
	}
	return *c.GCPercent, nil
}

// minMemoryLimit refuses a limit the daemon cannot live within: the Go
// runtime would collect garbage without pause, burning CPU, to no avail.
const minMemoryLimit = 8 << 20

var memoryUnits = []struct {
	suffix string
	shift  uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"Gi", 30}, {"Mi", 20}, {"Ki", 10}, {"B", 0}}

// MemoryLimitBytes is the soft memory limit (runtime/debug.SetMemoryLimit)
// in bytes: memoryLimit, DefaultMemoryLimit when it is empty, and 0 for
// "off" (no limit).
func (c *Config) MemoryLimitBytes() (int64, error) {
	if c == nil || c.MemoryLimit == "" {
		return DefaultMemoryLimit, nil
	}
	if c.MemoryLimit == "off" {
		return 0, nil
	}
	num, shift := c.MemoryLimit, uint(0)
	for _, u := range memoryUnits {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	switch {
	case err != nil || n < 0 || n > 1<<(62-shift):
		return 0, fmt.Errorf("memoryLimit %q: want a size such as 48MiB or 1GiB (units B, KiB, MiB, GiB), or off", c.MemoryLimit)
	case n<<shift < minMemoryLimit:
		return 0, fmt.Errorf("memoryLimit %q: less than %d MiB, in which the daemon cannot run", c.MemoryLimit, minMemoryLimit>>20)
	}
	return n << shift, nil
}
