package ruleset

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadValidatesDetectorOverrides(t *testing.T) {
	dir := t.TempDir()
	load := func(cfg string) error {
		p := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := Load(p, filepath.Join(dir, "rules.d"))
		return err
	}
	// One probe reason, one probe template, one NVML reason, the state
	// file's reason, one rule; the policy stage applies every setting to
	// each.
	if err := load("reasons:\n  ApproachingKernelPidMax: {enabled: false}\n  Nvidia-PersistencedRepeatedRestart: {enabled: false}\n" +
		"  NvidiaNVMLUnavailable: {severity: Fatal}\n  StateNotPersisted: {severity: Fatal}\n  SoftLockup: {enabled: false}\n" +
		"  NvidiaFabricError: {recovery: {expireAfter: 1h}}\n  ZramHighUsage: {threshold: {count: 3, window: 10m}}\n"); err != nil {
		t.Fatalf("valid detector overrides refused: %v", err)
	}
	for cfg, want := range map[string]string{
		"reasons:\n  ApproachingKernelPidMaxx: {enabled: false}\n":                   "no rule, probe or NVML check produces this reason",
		"reasons:\n  NvidiaFabricError: {recovery: {expireAfter: -1h}}\n":            "reasons.NvidiaFabricError: recovery.expireAfter must not be negative",
		"reasons:\n  ZramHighUsage: {threshold: {count: 3}}\n":                       "reasons.ZramHighUsage: threshold.window must be positive",
		"reasons:\n  NvidiaXID79Error: {recovery: {expireAfter: 1h}}\nbogus: true\n": "bogus",
	} {
		if err := load(cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error containing %q", cfg, err, want)
		}
	}
}

// TestLoadValidatesEscalations: the catalogue's reasons and templates can
// be escalated within their condition; every problem of a config is
// reported at once, each with its line.
func TestLoadValidatesEscalations(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.yaml")
	load := func(cfg string) error {
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := Load(p, filepath.Join(dir, "rules.d"))
		return err
	}
	if err := load("reasons:\n  NvidiaXID79Error: {escalate: {afterReboots: 1, within: 24h, reason: NvidiaDeviceCountMismatch}}\n" +
		"  NvidiaXID48Error: {escalate: {afterReboots: 0}}\n  NvidiaXID64Error: {escalate: {afterReboots: 2, reason: NvidiaXID79Error}}\n"); err != nil {
		t.Fatalf("valid escalations refused: %v", err)
	}
	err := load("reasons:\n  NvidiaXID79Error: {escalate: {afterReboots: 1, reason: ForkFailedOutOfPIDs}}\n" +
		"  NvidiaXID48Error: {escalate: {afterReboots: 1, reason: NvidiaXID1234Warning}}\n" +
		"  SoftLockup: {escalate: {afterReboots: 1, reason: ForkFailedOutOfPIDs}}\n" +
		"  NvidiaXID64Error: {escalate: {afterReboots: 1, within: 1x, reason: NvidiaXID79Error}}\n")
	if err == nil {
		t.Fatal("bad escalations accepted")
	}
	for _, want := range []string{
		"config.yaml:2: reasons.NvidiaXID79Error: escalate.reason ForkFailedOutOfPIDs belongs to condition KernelReady, not AcceleratedHardwareReady",
		"config.yaml:3: reasons.NvidiaXID48Error: escalate.reason NvidiaXID1234Warning is a Warning reason",
		"config.yaml:4: reasons.SoftLockup: escalate applies to Fatal findings, and SoftLockup is a Warning",
		`invalid duration "1x"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
