package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/problems"
)

func TestParseIsStrictAndNamesTheFile(t *testing.T) {
	for doc, want := range map[string]string{
		"reasons:\n  SoftLockup: {enabeld: false}\n":   "enabeld",
		"conditions:\n  DiskReady: {enabled: false}\n": "conditions.DiskReady",
		"sourcess: {}\n": "sourcess",
	} {
		_, err := Parse([]byte(doc), "/etc/nodehealthd/config.yaml")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "/etc/nodehealthd/config.yaml") {
			t.Errorf("%q: want an error naming %q and the file, got %v", doc, want, err)
		}
	}
}

func TestMissingFileIsDefaultsAndMonitored(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Monitored(false); !slices.Equal(got, []string{finding.KernelReady, finding.ContainerRuntimeReady, finding.NetworkingReady, finding.StorageReady}) {
		t.Fatalf("defaults without accelerators: %v", got)
	}
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte("conditions:\n  StorageReady: {enabled: false}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(p); err != nil {
		t.Fatal(err)
	}
	if got := c.Monitored(true); !slices.Equal(got, []string{finding.KernelReady, finding.ContainerRuntimeReady, finding.NetworkingReady, finding.AcceleratedHardwareReady}) {
		t.Fatalf("StorageReady disabled, accelerated node: %v", got)
	}
}

// TestParseReportsEveryProblem: an unknown key does not hide the other
// problems, each has its line, and what could be decoded is kept for the
// rules' validation.
func TestParseReportsEveryProblem(t *testing.T) {
	c, err := Parse([]byte(`conditions:
  Nope: {enabled: false}
  KernelReady: {enabled: false}
  AlsoNope: {}
reasons:
  SoftLockup: {severity: Fatal}
sourcess: {}
sources:
  kmsg: {facilities: [kern]}
`), "config.yaml")
	var got []string
	for _, p := range problems.List(err) {
		got = append(got, p.Error())
	}
	want := []string{
		"config.yaml:7: unknown field sourcess",
		"config.yaml:9: cannot unmarshal !!str `kern` into int",
		"config.yaml:4: conditions.AlsoNope: not one of the five condition types; a custom type needs healthyReason (the reason it shows while True)",
		"config.yaml:2: conditions.Nope: not one of the five condition types; a custom type needs healthyReason (the reason it shows while True)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems\n%q\nwant\n%q", got, want)
	}
	if c.Reasons["SoftLockup"].Severity != "Fatal" || c.Conditions[finding.KernelReady].On() {
		t.Errorf("what could be decoded was not kept: %+v", c)
	}
}

// Intervals decode as durations and are bounded: below a second the daemon
// would spin; housekeeping beyond a minute would fail /readyz.
func TestIntervals(t *testing.T) {
	c, err := Parse([]byte("housekeepingInterval: 45s\nsources:\n  journal: {pollInterval: 3m}\n  files: {pollInterval: 2m, rescanInterval: 5m}\n"), "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.HousekeepingInterval != 45*time.Second || c.Sources.Journal.PollInterval != 3*time.Minute || c.Sources.Files.PollInterval != 2*time.Minute ||
		c.Sources.Files.RescanInterval != 5*time.Minute || !c.Sources.Files.On() {
		t.Errorf("decoded %+v", c)
	}
	_, err = Parse([]byte("housekeepingInterval: 5m\nsources:\n  kmsg: {}\n  files:\n    pollInterval: 100ms\n    rescanInterval: 0s\n"), "config.yaml")
	var got []string
	for _, p := range problems.List(err) {
		got = append(got, p.Error())
	}
	want := []string{
		"config.yaml:1: housekeepingInterval: 5m0s: want between 1s and 1m0s",
		"config.yaml:4: sources.files.pollInterval: 100ms: want at least 1s",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems\n%q\nwant\n%q", got, want)
	}
}

func TestDiagnosticsDefaultsAndValues(t *testing.T) {
	c, err := Parse([]byte("{}\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Diagnostics
	if d.BundleDir() != DefaultDiagnosticsDir || d.KeepBundles() != 3 || d.KeepBytes() != 200<<20 || !d.OnFatal.On() || !d.ConsoleOn() ||
		!d.Requests.On() || d.Requests.Dir() != DefaultSupportDir {
		t.Fatalf("defaults: %+v", d)
	}
	c, err = Parse([]byte(`diagnostics:
  dir: /var/tmp/diag
  onFatal: {enabled: false}
  onWarning: [SoftLockup, AppCrash]
  retention: {bundles: 5, size: 1GiB}
  upload: {s3: "s3://bucket/prefix/{node}/"}
  console: false
  requests: {enabled: false, nodeDir: /srv/support}
`), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d = c.Diagnostics
	if d.BundleDir() != "/var/tmp/diag" || d.KeepBundles() != 5 || d.KeepBytes() != 1<<30 || d.OnFatal.On() || d.ConsoleOn() ||
		!slices.Equal(d.OnWarning, []string{"SoftLockup", "AppCrash"}) || d.Upload.S3 != "s3://bucket/prefix/{node}/" ||
		d.Requests.On() || d.Requests.Dir() != "/srv/support" {
		t.Fatalf("values: %+v", d)
	}
}

func TestDiagnosticsRejectsBadValues(t *testing.T) {
	for doc, want := range map[string]string{
		"diagnostics:\n  dir: relative/dir\n":                   "c.yaml:2: diagnostics.dir",
		"diagnostics:\n  requests: {nodeDir: support}\n":        "c.yaml:2: diagnostics.requests",
		"diagnostics:\n  retention: {size: 12XB}\n":             "c.yaml:2: size \"12XB\"",
		"diagnostics:\n  retention: {bundles: -1}\n":            "c.yaml:2: diagnostics.retention",
		"diagnostics:\n  upload: {s3: \"https://bucket/p/\"}\n": "c.yaml:2: diagnostics.upload",
		"diagnostics:\n  upload: {s3: \"s3:///nobucket\"}\n":    "diagnostics.upload",
		"diagnostics:\n  onWarning: [\"Bad Reason\"]\n":         "diagnostics.onWarning",
		"diagnostics:\n  onFatal: true\n":                       "c.yaml:2:",
		"diagnostics:\n  uplaod: {s3: \"s3://b/\"}\n":           "unknown field uplaod",
		"diagnostics:\n  collector: nodehealthctl\n":            "diagnostics.collector",
	} {
		_, err := Parse([]byte(doc), "c.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: want an error with %q, got %v", doc, want, err)
		}
	}
}

func TestParseS3URL(t *testing.T) {
	for in, want := range map[string][2]string{
		"s3://b":                {"b", ""},
		"s3://b/":               {"b", ""},
		"s3://b/p":              {"b", "p/"},
		"s3://b/p/{node}/":      {"b", "p/{node}/"},
		"s3://my.bucket/a/b/c/": {"my.bucket", "a/b/c/"},
	} {
		b, p, err := ParseS3URL(in)
		if err != nil || b != want[0] || p != want[1] {
			t.Errorf("ParseS3URL(%q) = %q, %q, %v; want %q, %q", in, b, p, err, want[0], want[1])
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	for doc, want := range map[string]int64{
		"":                        DefaultMemoryLimit,
		"memoryLimit: 64MiB\n":    64 << 20,
		"memoryLimit: 1GiB\n":     1 << 30,
		"memoryLimit: 100Mi\n":    100 << 20,
		"memoryLimit: 20971520\n": 20 << 20,
		"memoryLimit: off\n":      0,
	} {
		c, err := Parse([]byte(doc), "config.yaml")
		if err != nil {
			t.Errorf("%q: %v", doc, err)
			continue
		}
		if got, err := c.MemoryLimitBytes(); got != want || err != nil {
			t.Errorf("%q: %d (%v), want %d", doc, got, err, want)
		}
	}
	for _, doc := range []string{"memoryLimit: 64MB\n", "memoryLimit: -1MiB\n", "memoryLimit: 4MiB\n", "memoryLimit: lots\n", "memoryLimit: 99999999999GiB\n"} {
		_, err := Parse([]byte("rulesDir: /x\n"+doc), "config.yaml")
		if err == nil || !strings.Contains(err.Error(), "config.yaml:2") || !strings.Contains(err.Error(), "memoryLimit") {
			t.Errorf("%q: want an error at config.yaml:2 naming memoryLimit, got %v", doc, err)
		}
	}
}

// TestRulesDirFor: the flag wins, then the config's rulesDir, then the
// default; the daemon, nodehealthctl and NVML's XIDs all read the rules
// found there.
func TestRulesDirFor(t *testing.T) {
	if got := (&Config{RulesDir: "/cfg"}).RulesDirFor("/flag"); got != "/flag" {
		t.Errorf("flag: %q", got)
	}
	if got := (&Config{RulesDir: "/cfg"}).RulesDirFor(""); got != "/cfg" {
		t.Errorf("config: %q", got)
	}
	if got := (*Config)(nil).RulesDirFor(""); got != "/etc/nodehealthd/rules.d" {
		t.Errorf("default: %q", got)
	}
}

func TestClusterAndNVMLSections(t *testing.T) {
	c, err := Parse([]byte("cluster: {heartbeat: 2s, writeBurst: 3}\nnvml: {enabled: false, interval: 30s}\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Cluster.WithDefaults()
	if s.Heartbeat != 2*time.Second || s.WriteBurst != 3 || s.EventBurst != DefaultEventBurst || s.ExecTimeout != DefaultExecTimeout {
		t.Errorf("cluster settings %+v", s)
	}
	if s.DiscoverInterval != DefaultDiscoverInterval || s.FileCheckInterval != DefaultFileCheckInterval || s.NoWatch {
		t.Errorf("cluster defaults %+v", s)
	}
	c2, err := Parse([]byte("cluster: {discoverInterval: 5m, fileCheckInterval: 2s, noWatch: true}\n"), "c.yaml")
	if s := c2.Cluster.WithDefaults(); err != nil || s.DiscoverInterval != 5*time.Minute || s.FileCheckInterval != 2*time.Second || !s.NoWatch {
		t.Errorf("cluster settings %+v, %v", s, err)
	}
	_, err = Parse([]byte("cluster:\n  fileCheckInterval: 100ms\n"), "c.yaml")
	if err == nil || !strings.Contains(err.Error(), "c.yaml:2: cluster.fileCheckInterval") {
		t.Errorf("sub-second fileCheckInterval: got %v", err)
	}
	if c.NVML.On() || c.NVML.PollInterval() != 30*time.Second {
		t.Errorf("nvml %+v", c.NVML)
	}
	if (&Config{}).NVML.PollInterval() != DefaultNVMLInterval {
		t.Error("nvml interval default")
	}
	_, err = Parse([]byte("cluster:\n  heartbeat: 10ms\nnvml:\n  interval: 1ms\n"), "c.yaml")
	if err == nil || !strings.Contains(err.Error(), "c.yaml:2: cluster.heartbeat") || !strings.Contains(err.Error(), "c.yaml:4: nvml.interval") {
		t.Errorf("want both problems with their lines, got %v", err)
	}
}

// probes.enabled is the switch for every probe; the other keys stay the
// probes' own sections, for the probes to decode.
func TestProbesSwitchAndSections(t *testing.T) {
	c, err := Parse([]byte("probes:\n  enabled: false\n  zram: {period: 2m}\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if c.Probes.On() || len(c.Probes.Sections) != 1 || c.Probes.Sections["zram"].Kind == 0 {
		t.Fatalf("probes %+v: want off with the zram section kept", c.Probes)
	}
	if c, err = Parse([]byte("probes:\n  zram: {period: 2m}\n"), "test"); err != nil || !c.Probes.On() {
		t.Fatalf("default: on %v, err %v", c.Probes.On(), err)
	}
	if _, err = Parse([]byte("probes:\n  enabled: maybe\n"), "test"); err == nil || !strings.Contains(err.Error(), "test:2") {
		t.Fatalf("probes.enabled: maybe: got %v, want an error at line 2", err)
	}
}

func TestGCPercent(t *testing.T) {
	c, err := Parse([]byte("gcPercent: 80\n"), "test")
	if v, _ := c.GCPercentValue(); err != nil || v != 80 {
		t.Fatalf("gcPercent: 80: got %d, %v", v, err)
	}
	if v, _ := (&Config{}).GCPercentValue(); v != DefaultGCPercent {
		t.Fatalf("unset: got %d, want %d", v, DefaultGCPercent)
	}
	for _, doc := range []string{"gcPercent: 5\n", "gcPercent: 5000\n", "gcPercent: -1\n"} {
		if _, err := Parse([]byte(doc), "test"); err == nil || !strings.Contains(err.Error(), "test:1") || !strings.Contains(err.Error(), "gcPercent") {
			t.Errorf("%q: got %v, want an error at line 1 naming gcPercent", doc, err)
		}
	}
}
