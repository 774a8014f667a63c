package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

func ctl(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	rc := run(args, strings.NewReader(stdin), &out, &errb)
	return rc, out.String(), errb.String()
}

// readmeRule extracts the worked example rule from README.md, so the
// documented example cannot silently rot.
func readmeRule(t *testing.T) (dir string, input string, want string) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	m := regexp.MustCompile("(?s)```yaml\n(# /etc/nodehealthd/rules.d/gpu-driver.yaml\n.*?)```").FindStringSubmatch(s)
	if m == nil {
		t.Fatal("README example rule not found")
	}
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gpu.yaml"), []byte(m[1]), 0o644); err != nil {
		t.Fatal(err)
	}
	var lines []string
	cmd := regexp.MustCompile(`(?s)\$ printf.*?nodehealthctl test`).FindString(s)
	for _, l := range regexp.MustCompile(`'(NVRM: [^']*)'`).FindAllStringSubmatch(cmd, -1) {
		lines = append(lines, l[1])
	}
	out := regexp.MustCompile(`(?m)^\{"line".*\}$`).FindString(s)
	return dir, strings.Join(lines, "\n") + "\n", out
}

func TestReadmeExampleRule(t *testing.T) {
	dir, input, want := readmeRule(t)
	rc, out, errs := ctl(t, input, "test", "--source", "kmsg", "--rules", dir, "--config", filepath.Join(dir, "none.yaml"), "-o", "json")
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, errs)
	}
	if strings.TrimSpace(out) != want {
		t.Fatalf("README promises\n%s\ngot\n%s", want, out)
	}
}

func TestTestCommandCatalogueAndExitCodes(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none.yaml")
	empty := t.TempDir()
	in := "6,1,100,-;eth0: link up\n" +
		" SUBSYSTEM=net\n" +
		"4,2,200,-;watchdog: BUG: soft lockup - CPU#3 stuck for 23s! [kworker/3:1:123]\n"
	rc, out, errs := ctl(t, in, "test", "--source", "kmsg", "--rules", empty, "--config", none, "-o", "json")
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, errs)
	}
	var r testResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if r.Line != 3 || r.Reason != "SoftLockup" || r.Severity != "Warning" || r.Condition != "KernelReady" || r.Message == "" {
		t.Fatalf("got %+v", r)
	}
	if rc, _, _ := ctl(t, "", "test", "--source", "dmesg"); rc != 2 {
		t.Fatalf("bad source: rc %d, want 2", rc)
	}
	if rc, _, _ := ctl(t, "", "test", "--source", "journal"); rc != 2 {
		t.Fatalf("journal without identifier: rc %d, want 2", rc)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "bad.yaml"), []byte("rules:\n  - name: X\n    condition: Nope\n"), 0o644)
	rc, _, errs = ctl(t, "x\n", "test", "--source", "kmsg", "--rules", bad, "--config", none)
	if rc != 2 || !strings.Contains(errs, "bad.yaml") {
		t.Fatalf("invalid rules: rc %d, stderr %q", rc, errs)
	}
	if rc, _, _ := ctl(t, "", "rules", "validate", "--rules", bad, "--config", none); rc != 2 {
		t.Fatal("rules validate accepted invalid rules")
	}
	if rc, out, _ := ctl(t, "", "rules", "validate", "--rules", empty, "--config", none); rc != 0 || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("rules validate: rc %d %q", rc, out)
	}
}

func writeState(t *testing.T, dir string, st *state.State) {
	t.Helper()
	s, _, err := state.Open(dir, st.BootID, time.Now(), discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Save(st, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestStatusAndClearWithoutDaemon(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	st := state.New("boot-1", now)
	var ch state.Changes
	st.Raise(finding.Finding{Condition: finding.KernelReady, Reason: "ForkFailedOutOfPIDs", Severity: finding.Fatal, Message: "fork failed", Source: "journal", Detected: now.Add(-time.Minute), LastSeen: now, Count: 1}, false, &ch)
	st.Raise(finding.Finding{Condition: finding.KernelReady, Reason: "SoftLockup", Severity: finding.Warning, Message: "CPU stuck for 23s", Source: "kmsg", Detected: now, LastSeen: now, Count: 1}, false, &ch)
	st.UpdateConditions([]string{finding.KernelReady, finding.StorageReady}, "", now)
	writeState(t, dir, st)

	rc, out, errs := ctl(t, "", "status", "--state-dir", dir)
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, errs)
	}
	for _, want := range []string{"KernelReady", "False", "ForkFailedOutOfPIDs", "StorageReady", "DiskIsReady", "Active findings: 1", "Warnings in the last hour: 1", "CPU stuck for 23s", "local mode"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	rc, out, _ = ctl(t, "", "clear", "ForkFailedOutOfPIDs", "--state-dir", dir)
	if rc != 0 || !strings.Contains(out, "cleared 1") {
		t.Fatalf("clear: rc %d %q", rc, out)
	}
	after, err := state.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Active) != 0 || after.Conditions[finding.KernelReady].Status != "True" {
		t.Fatalf("after clear: active %v, KernelReady %+v", after.Active, after.Conditions[finding.KernelReady])
	}
	if rc, _, _ := ctl(t, "", "status", "--state-dir", t.TempDir()); rc != 1 {
		t.Fatal("status of an empty state dir should fail")
	}
}

// A publisher that cannot authenticate says so, not merely
// "disconnected".
func TestStatusShowsUnauthenticatedCluster(t *testing.T) {
	dir := t.TempDir()
	st := state.New("boot-1", time.Now())
	st.Cluster = &state.ClusterLink{Node: "node-a", Unauthenticated: true, PendingWrites: 1,
		LastError: "write conditions: exec credential plugin aws: timed out after 30s; killed"}
	writeState(t, dir, st)
	rc, out, errs := ctl(t, "", "status", "--state-dir", dir)
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, errs)
	}
	if want := "Cluster: cannot authenticate as node node-a, last successful write never, 1 pending writes, last error: " + st.Cluster.LastError; !strings.Contains(out, want) {
		t.Errorf("status lacks %q:\n%s", want, out)
	}
}

func TestClearIsHandedToARunningDaemon(t *testing.T) {
	dir := t.TempDir()
	st := state.New("boot-1", time.Now())
	writeState(t, dir, st)
	// Hold the lock like a running daemon and apply requests like it does.
	s, _, err := state.Open(dir, "boot-1", time.Now(), discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan *state.Request, 1)
	go func() {
		for i := 0; i < 100; i++ {
			if reqs := s.PendingRequests(time.Now()); len(reqs) > 0 {
				s.DoneRequest(reqs[0].Name)
				done <- reqs[0].Request
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		done <- nil
	}()
	rc, out, errs := ctl(t, "", "clear", "SoftLockup", "--key", "cpu3", "--state-dir", dir)
	if rc != 0 || !strings.Contains(out, "applied by the running daemon") {
		t.Fatalf("rc %d out %q err %q", rc, out, errs)
	}
	r := <-done
	if r == nil || r.Clear == nil || r.Clear.Reason != "SoftLockup" || r.Clear.Key != "cpu3" || r.Clear.AllKeys {
		t.Fatalf("request: %+v", r)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// status asks the running daemon what its state file cannot say: that it
// is not being written.
func TestStatusShowsAStateNotPersisted(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	st := state.New("boot-1", now)
	writeState(t, dir, st)
	if rc, out, _ := ctl(t, "", "status", "--state-dir", dir); rc != 0 || !strings.Contains(out, "Daemon: not running") {
		t.Fatalf("status without a daemon: rc %d\n%s", rc, out)
	}
	s, _, err := state.Open(dir, "boot-1", now, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetLive(state.Live{PID: 4242, Unsaved: &state.SaveFailure{Since: now.Add(-time.Minute), Err: "write state: no space left on device", Failures: 3}})
	rc, out, errs := ctl(t, "", "status", "--state-dir", dir)
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, errs)
	}
	first := strings.SplitN(out, "\n", 2)[0]
	for _, want := range []string{"pid 4242", "STATE NOT PERSISTED", "no space left on device", "3 failed writes"} {
		if !strings.Contains(first, want) {
			t.Errorf("first line of status lacks %q:\n%s", want, out)
		}
	}
	rc, out, _ = ctl(t, "", "status", "-o", "json", "--state-dir", dir)
	var v struct {
		Daemon *state.Live `json:"daemon"`
	}
	if err := json.Unmarshal([]byte(out), &v); rc != 0 || err != nil || v.Daemon == nil || v.Daemon.Unsaved == nil || v.Daemon.Unsaved.Failures != 3 {
		t.Fatalf("status -o json: rc %d err %v\n%s", rc, err, out)
	}
}

// TestStatusShowsRecurrence: an active finding that recurred after reboots
// says so, escalation included, and the reasons seen in several boots are
// listed.
func TestStatusShowsRecurrence(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	st := state.New("boot-2", now)
	var ch state.Changes
	st.Raise(finding.Finding{Condition: finding.AcceleratedHardwareReady, Reason: "NvidiaXID140Error", Severity: finding.Fatal, Key: "0000:3b:00/48",
		Message: "detected XID-48", Source: "kmsg", Detected: now, LastSeen: now, Count: 1,
		Recurrence: &finding.Recurrence{Reason: "NvidiaXID48Error", Reboots: 1, Within: 24 * time.Hour, Escalated: true}}, false, &ch)
	st.History = policy.History{
		"NvidiaXID48Error": {{BootID: "boot-1", At: now.Add(-time.Hour)}, {BootID: "boot-2", At: now}},
		"Once":             {{BootID: "boot-1", At: now.Add(-time.Hour)}},
	}
	writeState(t, dir, st)
	rc, out, errs := ctl(t, "", "status", "--state-dir", dir)
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, errs)
	}
	for _, want := range []string{"RECURRING: NvidiaXID48Error recurred after 1 reboot in 24h, escalated", "Fatal reasons seen in several boots", "NvidiaXID48Error: 2 boots"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Once:") {
		t.Errorf("a reason seen in one boot is listed:\n%s", out)
	}
	rc, out, _ = ctl(t, "", "status", "-o", "json", "--state-dir", dir)
	var v struct {
		Active  []finding.Finding `json:"active"`
		History policy.History    `json:"history"`
	}
	if err := json.Unmarshal([]byte(out), &v); rc != 0 || err != nil || v.Active[0].Recurrence == nil || len(v.History["NvidiaXID48Error"]) != 2 {
		t.Fatalf("json: rc %d err %v\n%s", rc, err, out)
	}
}
