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
  ZramHighUsage: {threshold: {count: 2}}
probes:
  ip-rules: {confirmations: -1}
`)
	if rc != 2 || !strings.Contains(errs, "reasons.ZramHighUsage") || !strings.Contains(errs, "probes.ip-rules") {
		t.Fatalf("rc %d, want 2 and both problems named:\n%s", rc, errs)
	}
}

// TestRulesValidateReportsEveryProblem: one run lists every problem of
// every file, each with its file and line, one a line: a YAML syntax error,
// a bad regexp in another file, an unknown field and a bad severity in one
// file, a name used in two files, and a config error.
func TestRulesValidateReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.d")
	rule := func(name, extra string) string {
		return "  - name: " + name + "\n    condition: KernelReady\n    reason: " + name + "\n    severity: Warning\n    source: kmsg\n    patterns: ['" + name + "']\n" + extra
	}
	files := map[string]string{
		"config.yaml":    "conditions:\n  KernelReady: {enabled: true}\n  NoSuchCondition: {enabled: false}\n",
		"rules.d/a.yaml": "rules:\n  - name: A\n   reason: A\n",
		"rules.d/b.yaml": "rules:\n" + rule("B", "    exclude: ['(']\n"),
		"rules.d/c.yaml": "rules:\n" + rule("C1", "    typo: 1\n") + strings.Replace(rule("C2", ""), "Warning", "Loud", 1),
		"rules.d/d.yaml": "rules:\n" + rule("Dup", ""),
		"rules.d/e.yaml": "# e\nrules:\n" + rule("Dup", ""),
	}
	if err := os.Mkdir(rules, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rc, out, errs := ctl(t, "", "rules", "validate", "--rules", rules, "--config", filepath.Join(dir, "config.yaml"))
	if rc == 0 || out != "" {
		t.Fatalf("rc %d, stdout %q: want a failure", rc, out)
	}
	at := func(name string) string { return filepath.Join(dir, name) }
	want := []string{
		at("config.yaml") + ":3: conditions.NoSuchCondition: not one of the five condition types; a custom type needs healthyReason (the reason it shows while True)",
		at("rules.d/a.yaml") + ":1: yaml: ",
		at("rules.d/b.yaml") + `:2: rule "B": exclude 1: error parsing regexp`,
		at("rules.d/c.yaml") + `:8: rule "C1": unknown field typo`,
		at("rules.d/c.yaml") + `:9: rule "C2": unknown severity "Loud"`,
		at("rules.d/e.yaml") + `:3: rule "Dup": name already used at ` + at("rules.d/d.yaml") + ":2",
	}
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if len(lines) != 1+len(want) || lines[0] != "invalid rules or config: 6 problems:" {
		t.Errorf("stderr:\n%s\nwant a count and %d problems", errs, len(want))
	}
	for _, w := range want {
		found := false
		for _, l := range lines {
			found = found || strings.HasPrefix(l, w)
		}
		if !found {
			t.Errorf("no line starting %q in:\n%s", w, errs)
		}
	}
}

// TestRulesListShowsDeclaredReasons: rules list shows, after the rules, the
// reasons probes, NVML and the daemon declare, with config.yaml's severity
// and threshold applied and those switched off left out.
func TestRulesListShowsDeclaredReasons(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.yaml")
	cfg := "reasons:\n  ApproachingKernelPidMax: {severity: Fatal, threshold: {count: 3, window: 1m}}\n  ZramHighUsage: {enabled: false}\n"
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, out, errs := ctl(t, "", "rules", "list", "--rules", t.TempDir(), "--config", p)
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, errs)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 {
			lines[f[2]] = l
		}
	}
	for reason, want := range map[string][]string{
		"ApproachingKernelPidMax": {"pid-max", "KernelReady", "Fatal", "probe:pid-max", "3 in 1m0s"},
		"NvidiaNVLinkError":       {"nvml", "AcceleratedHardwareReady", "Fatal", "nvml"},
		"StateNotPersisted":       {"state", "StorageReady", "Warning"},
		"SoftLockup":              {"KernelReady", "kmsg"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[reason], w) {
				t.Errorf("%s: line %q lacks %q", reason, lines[reason], w)
			}
		}
	}
	if l, ok := lines["ZramHighUsage"]; ok {
		t.Errorf("a reason switched off is listed: %q", l)
	}
}
