package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRulesValidateChecksProbesAndDetectorReasons: rules validate accepts
// overrides of probe and NVML reasons, and refuses a config whose probes
// sections the daemon would reject, naming every bad section.
func TestRulesValidateChecksProbesAndDetectorReasons(t *testing.T) {
	dir := t.TempDir()
	rules := t.TempDir()
	validate := func(cfg string) (int, string, string) {
		t.Helper()
		p := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return ctl(t, "", "rules", "validate", "--rules", rules, "--config", p)
	}

	rc, out, errs := validate(`reasons:
  ApproachingKernelPidMax: {enabled: false}
  KubeletRepeatedRestart: {severity: Fatal}
  NvidiaNVLinkError: {severity: Warning}
probes:
  pid-max: {period: 1m, threshold: 0.8}
  ip-rules: {confirmations: 3}
`)
	if rc != 0 || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("valid config: rc %d, stdout %q, stderr %q", rc, out, errs)
	}

	rc, _, errs = validate(`probes:
  pid-max: {threshold: 2}
  zombies: {typo: 1}
  no-such-probe: {}
`)
	if rc != 2 {
		t.Fatalf("bad probes sections: rc %d, want 2 (stderr %q)", rc, errs)
	}
	for _, want := range []string{"invalid probes configuration", "probes.pid-max", "probes.zombies", "probes.no-such-probe"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}

	// A bad override and a bad probe section are both reported.
	rc, _, errs = validate(`reasons:
  ZramHighUsage: {threshold: {count: 2, window: 1m}}
probes:
  ip-rules: {confirmations: -1}
`)
	if rc != 2 || !strings.Contains(errs, "reasons.ZramHighUsage") || !strings.Contains(errs, "probes.ip-rules") {
		t.Fatalf("rc %d, want 2 and both problems named:\n%s", rc, errs)
	}
}
