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
		"config.yaml:4: conditions.AlsoNope: not a condition type",
		"config.yaml:2: conditions.Nope: not a condition type",
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
