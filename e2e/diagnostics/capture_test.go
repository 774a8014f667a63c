// Package diagnostics tests the daemon's automatic diagnostics end to end:
// the real nodehealthd and nodehealthctl binaries on a fixture root, a
// file rule raising Fatal findings, bundles captured by the real
// collector, retention, the console summary and the S3 upload against a
// fake S3 and IMDS on loopback.
package diagnostics

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/e2e/internal/daemontest"
	"github.com/nodehealthd/nodehealthd/e2e/internal/testbin"
	"github.com/nodehealthd/nodehealthd/internal/diag/bundletest"
	"github.com/nodehealthd/nodehealthd/internal/s3upload/s3test"
)

const reasons = 5

// daemon is a running nodehealthd and what it printed.
type daemon struct {
	root, stateDir, diagDir, console, logFile string
	bin                                       string
	*daemontest.Daemon

	mu    sync.Mutex
	lines []line
}

// line is one JSON line of -o json, stamped when it was read.
type line struct {
	Event, Condition, Reason, Status, Message string
	seen                                      time.Time
}

// start runs the daemon on a fixture root whose /var/log/e2e.log is read
// by rules E2EFatal1..5 (Fatal, KernelReady), with config extra appended
// to the diagnostics section.
func start(t *testing.T, extraDiag string, env []string) *daemon {
	bin := testbin.Build(t)
	work := t.TempDir()
	d := &daemon{bin: bin, root: filepath.Join(work, "root"), stateDir: filepath.Join(work, "state"),
		diagDir: filepath.Join(work, "diagnostics"), console: filepath.Join(work, "console")}
	d.logFile = filepath.Join(d.root, "var/log/e2e.log")
	daemontest.Write(t, filepath.Join(d.root, "proc/sys/kernel/hostname"), "node-e2e\n")
	daemontest.Write(t, filepath.Join(d.root, "proc/sys/kernel/random/boot_id"), "5b8e6c1e-0000-4000-8000-000000000001\n")
	daemontest.Write(t, d.logFile, "")
	daemontest.Write(t, d.console, "")
	var rules strings.Builder
	rules.WriteString("rules:\n")
	for i := 1; i <= reasons; i++ {
		fmt.Fprintf(&rules, "  - name: E2EFatal%d\n    condition: KernelReady\n    reason: E2EFatal%d\n    severity: Fatal\n    source: file\n    paths: [/var/log/e2e.log]\n    patterns: ['e2e-fatal-%d (?P<what>\\S+)']\n    message: 'fatal %d: ${what}'\n", i, i, i, i)
	}
	daemontest.Write(t, filepath.Join(work, "rules.d/e2e.yaml"), rules.String())
	daemontest.Write(t, filepath.Join(work, "etc/config.yaml"), "diagnostics:\n  dir: "+d.diagDir+"\n"+extraDiag)

	d.Daemon = daemontest.Start(t, []string{"--root", d.root, "--state-dir", d.stateDir,
		"--config", filepath.Join(work, "etc/config.yaml"), "--rules-dir", filepath.Join(work, "rules.d"),
		"-o", "json", "--cluster", "off", "--metrics-address", "", "--diagnostics-console", d.console},
		daemontest.Options{Env: env, Stdout: func(b []byte) {
			var l line
			if json.Unmarshal(b, &l) == nil {
				l.seen = time.Now()
				d.mu.Lock()
				d.lines = append(d.lines, l)
				d.mu.Unlock()
			}
		}})
	// The tailer starts after the first commit, at the end of a file that
	// was there before: lines written before it looks would be skipped.
	// A line that matches nothing shows when it reads.
	f, err := os.OpenFile(d.logFile, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d.Eventually(t, 20*time.Second, "the tailer to read e2e.log", func() (bool, string) {
		f.WriteString("warm-up\n")
		time.Sleep(100 * time.Millisecond)
		b, err := os.ReadFile(filepath.Join(d.stateDir, "state.json"))
		if err != nil {
			return false, err.Error()
		}
		var st struct {
			Positions map[string]struct{ Offset int64 } `json:"positions"`
		}
		return json.Unmarshal(b, &st) == nil && st.Positions["file:/var/log/e2e.log"].Offset > 0, fmt.Sprintf("positions %v", st.Positions)
	})
	return d
}

// fire appends a line for reason i and returns when it was written.
func (d *daemon) fire(t *testing.T, i int) time.Time {
	f, err := os.OpenFile(d.logFile, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "e2e-fatal-%d now\n", i); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// condition waits for KernelReady to be printed with status (and reason)
// after since, and returns when it was read.
func (d *daemon) condition(t *testing.T, status, reason string, since time.Time) time.Time {
	t.Helper()
	var at time.Time
	d.Eventually(t, 20*time.Second, "KernelReady="+status+" "+reason, func() (bool, string) {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, l := range d.lines {
			if l.Event == "condition" && l.Condition == "KernelReady" && l.Status == status && (reason == "" || l.Reason == reason) && !l.seen.Before(since) {
				at = l.seen
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d lines printed", len(d.lines))
	})
	return at
}

func (d *daemon) clear(t *testing.T, reason string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(d.bin, "nodehealthctl"), "clear", reason, "--state-dir", d.stateDir).CombinedOutput()
	if err != nil {
		t.Fatalf("nodehealthctl clear %s: %v\n%s", reason, err, out)
	}
}

func (d *daemon) bundles(t *testing.T) []string {
	ents, err := os.ReadDir(d.diagDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "nodehealthd-diag-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func (d *daemon) bundleOf(t *testing.T, reason string) string {
	for _, b := range d.bundles(t) {
		if strings.HasSuffix(b, "-"+reason+".tar.gz") {
			return b
		}
	}
	return ""
}

// checkBundle opens a bundle as tar.gz and returns its manifest and
// files.
func checkBundle(t *testing.T, p string) (map[string]any, map[string][]byte) {
	t.Helper()
	files := bundletest.ReadFile(t, p)
	var man map[string]any
	if err := json.Unmarshal(files["manifest.json"], &man); err != nil {
		t.Fatalf("%s: manifest.json: %v", p, err)
	}
	return man, files
}

// TestFatalFindingsCaptureBundles is the acceptance of automatic
// captures: a Fatal finding writes one bundle within 60 s that is a valid
// tar.gz with a manifest and the daemon's state; five Fatal reasons, one
// after the other, leave the default three bundles; and the condition is
// printed within a second of each line while captures run.
func TestFatalFindingsCaptureBundles(t *testing.T) {
	d := start(t, "", nil)
	var fired [reasons + 1]time.Time
	for i := 1; i <= reasons; i++ {
		reason := fmt.Sprintf("E2EFatal%d", i)
		fired[i] = d.fire(t, i)
		at := d.condition(t, "False", reason, fired[i])
		if lat := at.Sub(fired[i]); lat > time.Second {
			t.Errorf("%s: KernelReady=False printed %v after the line, want under 1s", reason, lat.Round(time.Millisecond))
		} else {
			t.Logf("%s: line → KernelReady=False printed in %v", reason, lat.Round(time.Millisecond))
		}
		if i == 1 {
			// The acceptance's first half: one bundle within 60 s.
			d.Eventually(t, 60*time.Second, "the bundle of "+reason, func() (bool, string) { return d.bundleOf(t, reason) != "", "no bundle" })
			t.Logf("%s: bundle after %v", reason, time.Since(fired[i]).Round(time.Millisecond))
			if n := len(d.bundles(t)); n != 1 {
				t.Fatalf("%d bundles for one transition: %v", n, d.bundles(t))
			}
			man, files := checkBundle(t, filepath.Join(d.diagDir, d.bundleOf(t, reason)))
			if entries, _ := man["entries"].([]any); len(entries) < 10 {
				t.Errorf("manifest lists %d entries", len(entries))
			}
			if !strings.Contains(string(files["nodehealthd/state.json"]), reason) {
				t.Errorf("the bundle's state.json does not hold the finding that triggered it")
			}
		}
		d.clear(t, reason)
		d.condition(t, "True", "", fired[i])
	}
	last := fmt.Sprintf("E2EFatal%d", reasons)
	d.Eventually(t, 4*time.Minute, "the last reason's bundle, and retention", func() (bool, string) {
		return d.bundleOf(t, last) != "" && len(d.bundles(t)) <= 3, fmt.Sprintf("bundles %v", d.bundles(t))
	})
	got := d.bundles(t)
	slices.Sort(got)
	if len(got) != 3 {
		t.Fatalf("bundles %v, want the default retention of 3", got)
	}
	for i, b := range got {
		if want := fmt.Sprintf("-E2EFatal%d.tar.gz", i+3); !strings.HasSuffix(b, want) {
			t.Errorf("bundle %d is %s, want the newest three (…%s)", i, b, want)
		}
		checkBundle(t, filepath.Join(d.diagDir, b))
	}
	ents, _ := os.ReadDir(d.diagDir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".partial") {
			t.Errorf("half-written bundle left: %s", e.Name())
		}
	}
	// Part 4 rides along: while KernelReady was False the console got a
	// summary.
	if b, _ := os.ReadFile(d.console); !strings.Contains(string(b), "KernelReady=False E2EFatal1") {
		t.Errorf("no console summary while KernelReady was False:\n%s", b)
	}
}

// TestUploadOutcomeIsAFinding: with diagnostics.upload.s3, the captured
// bundle lands in S3 under the node's prefix (credentials and region from
// IMDSv2), and the outcome comes back as a DiagnosticsUploaded Warning; a
// failing S3 gives DiagnosticsUploadFailed.
func TestUploadOutcomeIsAFinding(t *testing.T) {
	srv := s3test.Start(t, "diag-bucket")
	env := srv.Env(t)
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"} {
		env = append(env, k+"=")
	}
	d := start(t, "  upload: {s3: \"s3://diag-bucket/bundles/{node}/\"}\n", env)
	status := func() []map[string]any {
		out, err := exec.Command(filepath.Join(d.bin, "nodehealthctl"), "status", "--state-dir", d.stateDir, "-o", "json").Output()
		if err != nil {
			return nil
		}
		var st struct {
			Recent []map[string]any `json:"recentWarnings"`
		}
		json.Unmarshal(out, &st)
		return st.Recent
	}
	recent := func(reason string) map[string]any {
		for _, f := range status() {
			if f["reason"] == reason {
				return f
			}
		}
		return nil
	}
	fired := d.fire(t, 1)
	d.condition(t, "False", "E2EFatal1", fired)
	d.Eventually(t, 90*time.Second, "DiagnosticsUploaded in nodehealthctl status", func() (bool, string) {
		return recent("DiagnosticsUploaded") != nil, "not in recentWarnings"
	})
	b := d.bundleOf(t, "E2EFatal1")
	key := "bundles/node-e2e/" + b
	got, ok := srv.Object("diag-bucket", key)
	local, _ := os.ReadFile(filepath.Join(d.diagDir, b))
	if !ok || len(got) == 0 || string(got) != string(local) {
		t.Fatalf("object %s: found %v (%d bytes, local %d); keys %v", key, ok, len(got), len(local), srv.Keys("diag-bucket"))
	}
	if msg, _ := recent("DiagnosticsUploaded")["message"].(string); !strings.Contains(msg, "s3://diag-bucket/"+key) {
		t.Errorf("DiagnosticsUploaded message %q does not name the object", msg)
	}

	srv.Fail.Store(true)
	d.clear(t, "E2EFatal1")
	d.condition(t, "True", "", fired)
	fired = d.fire(t, 2)
	d.condition(t, "False", "E2EFatal2", fired)
	d.Eventually(t, 3*time.Minute, "DiagnosticsUploadFailed in nodehealthctl status", func() (bool, string) {
		return recent("DiagnosticsUploadFailed") != nil, "not in recentWarnings"
	})
	if f := recent("DiagnosticsUploadFailed"); f["severity"] != "Warning" || !strings.Contains(fmt.Sprint(f["message"]), "E2EFatal2") {
		t.Errorf("DiagnosticsUploadFailed: %v", f)
	}
}
