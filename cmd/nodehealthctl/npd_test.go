package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const npdTestdata = "../../internal/npdimport/testdata/"

// importNPD runs rules import-npd and, when it wrote rules, saves them
// into a fresh rules directory.
func importNPD(t *testing.T, args ...string) (rc int, rulesDir, stderr string) {
	t.Helper()
	rc, out, errs := ctl(t, "", append([]string{"rules", "import-npd"}, args...)...)
	rulesDir = t.TempDir()
	if out != "" {
		if err := os.WriteFile(filepath.Join(rulesDir, "50-npd.yaml"), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return rc, rulesDir, errs
}

// TestImportNPDValidates: NPD's default kernel-monitor, docker-monitor and
// systemd-monitor configs (as written in testdata) convert with status 0,
// the rules on stdout pass rules validate beside the catalogue, and
// nodehealthctl test finds with them what NPD finds.
func TestImportNPDValidates(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none.yaml")
	rc, dir, errs := importNPD(t, npdTestdata+"kernel-monitor.json", npdTestdata+"docker-monitor.json", npdTestdata+"systemd-monitor.json")
	if rc != 0 {
		t.Fatalf("import-npd: rc %d, stderr:\n%s", rc, errs)
	}
	if !strings.Contains(errs, "import-npd: 20 rules converted from 3 files; 0 skipped") {
		t.Errorf("stderr lacks the summary:\n%s", errs)
	}
	if rc, out, verrs := ctl(t, "", "rules", "validate", "--rules", dir, "--config", none); rc != 0 || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("rules validate: rc %d, stdout %q, stderr:\n%s", rc, out, verrs)
	}

	rc, out, terrs := ctl(t, "INFO: task docker:7412 blocked for more than 120 seconds.\n", "test", "--source", "kmsg", "--rules", dir, "--config", none, "-o", "json")
	if rc != 0 {
		t.Fatalf("test: rc %d: %s", rc, terrs)
	}
	got := map[string]testResult{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r testResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%v: %q", err, l)
		}
		got[r.Rule] = r
	}
	if r := got["npd-kernel-monitor-DockerHung"]; r.Reason != "DockerHung" || r.Severity != "Fatal" || r.Condition != "KernelReady" {
		t.Errorf("DockerHung: got %+v in %s", r, out)
	}
	if r := got["npd-kernel-monitor-TaskHung"]; r.Reason != "TaskHung" || r.Severity != "Warning" {
		t.Errorf("TaskHung: got %+v in %s", r, out)
	}

	rc, out, _ = ctl(t, "Started Kubernetes kubelet.\n", "test", "--source", "journal", "--identifier", "systemd", "--rules", dir, "--config", none, "-o", "json")
	if rc != 0 || !strings.Contains(out, `"rule":"npd-systemd-monitor-KubeletStart"`) {
		t.Errorf("journal: rc %d, %s", rc, out)
	}
}

// TestImportNPDUnmappable: with constructs it cannot map, import-npd still
// writes the rest (which validates), lists each construct on stderr, one
// line with its file and rule, and exits 1.
func TestImportNPDUnmappable(t *testing.T) {
	rc, dir, errs := importNPD(t, npdTestdata+"unmappable.json", npdTestdata+"unmappable-journal.json")
	if rc != 1 {
		t.Fatalf("rc %d, want 1; stderr:\n%s", rc, errs)
	}
	for _, want := range []string{
		npdTestdata + "unmappable.json:27: rule 2 (FooIsStuck): skipped: condition FooStuck has no nodehealthd condition; choose one with --condition-map FooStuck=<condition>",
		npdTestdata + "unmappable.json:64: rule 9 (FooThreeLines): skipped: pattern spans 3 lines but bufferSize is 2",
		npdTestdata + "unmappable-journal.json:10: rule 1 (MyAppCrashed): skipped: no condition to file the MyAppCrashed event under",
		"import-npd: 1 rule converted from 2 files; 14 skipped",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if rc, out, verrs := ctl(t, "", "rules", "validate", "--rules", dir, "--config", filepath.Join(dir, "none.yaml")); rc != 0 {
		t.Fatalf("rules validate: rc %d, stdout %q, stderr:\n%s", rc, out, verrs)
	}

	// Mapping the missing conditions converts those rules too; flags may
	// follow the files.
	rc, _, errs = importNPD(t, npdTestdata+"unmappable-journal.json", "--condition-map", "MyAppCrashed=ContainerRuntimeReady", "--condition-map=MyAppSlow=ContainerRuntimeReady")
	if rc != 0 || !strings.Contains(errs, "2 rules converted from 1 file; 0 skipped") {
		t.Errorf("with --condition-map: rc %d, stderr:\n%s", rc, errs)
	}
}

// TestImportNPDInvalid: bad usage and invalid input exit 2 and write no
// rules.
func TestImportNPDInvalid(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"plugin": "kmsg", "rules": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	custom := filepath.Join(dir, "custom-plugin-monitor.json")
	if err := os.WriteFile(custom, []byte(`{"plugin": "custom", "rules": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no files":      {nil, "Usage: nodehealthctl rules import-npd"},
		"missing file":  {[]string{filepath.Join(dir, "nope.json")}, "nope.json: open"},
		"directory":     {[]string{dir}, "not a regular file"},
		"bad json":      {[]string{npdTestdata + "kernel-monitor.json", bad}, "bad.json:1: invalid JSON"},
		"custom plugin": {[]string{custom}, "custom-plugin-monitor config"},
		"bad map":       {[]string{"--condition-map", "KernelDeadlock=Deadlocked", npdTestdata + "kernel-monitor.json"}, `"Deadlocked" is not one of`},
		"bad flag":      {[]string{"--nope", npdTestdata + "kernel-monitor.json"}, "flag provided but not defined"},
	} {
		rc, out, errs := ctl(t, "", append([]string{"rules", "import-npd"}, tc.args...)...)
		if rc != 2 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("%s: rc %d, stdout %q, stderr %q; want 2, nothing and %q", name, rc, out, errs, tc.want)
		}
	}
}
