package plugin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/problems"
)

func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func rule(path string, timeout time.Duration) Rule {
	return Rule{Type: Permanent, Condition: "FooReady", Reason: "FooDown", Path: path, Timeout: timeout, Interval: time.Second}
}

func TestExecStatuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		body   string
		status Status
		output string
	}{
		{"echo '  all good  '; exit 0", OK, "all good"},
		{"echo foo is down; exit 1", Problem, "foo is down"},
		{"echo confused; echo stderr words >&2; exit 2", Unknown, "exit status 2: stderr words"},
		{"kill -TERM $$", Unknown, "signal: terminated"},
	} {
		p := script(t, dir, "s"+strconv.Itoa(len(tc.body))+".sh", tc.body)
		res := Exec(context.Background(), rule(p, 5*time.Second), 80, nil)
		if res.Status != tc.status || res.Output != tc.output || res.TimedOut {
			t.Errorf("%q: got %+v, want %s %q", tc.body, res, tc.status, tc.output)
		}
	}
	res := Exec(context.Background(), rule(filepath.Join(dir, "missing"), time.Second), 80, nil)
	if res.Status != Unknown || !strings.Contains(res.Output, "cannot run") {
		t.Errorf("missing plugin: %+v", res)
	}
}

// TestExecOutputBounded: output is trimmed and cut to max_output_length,
// and a plugin writing far more than is kept is neither blocked nor kept.
func TestExecOutputBounded(t *testing.T) {
	dir := t.TempDir()
	p := script(t, dir, "chatty.sh", "printf '   '; head -c 1000000 /dev/zero | tr '\\000' x; exit 1")
	res := Exec(context.Background(), rule(p, 10*time.Second), 20, nil)
	if res.Status != Problem || len(res.Output) > 20 || !strings.HasPrefix(res.Output, "xxxxxxxxxxxxxxxx") {
		t.Fatalf("got %s %q (%d bytes), want a problem cut to 20 bytes", res.Status, res.Output, len(res.Output))
	}
}

// TestExecTimeoutKillsProcessGroup: a hung plugin that started a child is
// killed with the child, and reported unknown.
func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	p := script(t, dir, "hang.sh", "sleep 300 &\necho $! > "+pidFile+"\nsleep 300")
	res := Exec(context.Background(), rule(p, 500*time.Millisecond), 80, nil)
	if res.Status != Unknown || !res.TimedOut || !strings.Contains(res.Output, "timed out") {
		t.Fatalf("hung plugin: %+v", res)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	// The child was our grandchild: once killed, init reaps it. Signal 0
	// tells whether it still exists (a zombie not yet reaped counts as gone
	// only after reaping, so wait for that).
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's child %d survived its timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExecAsUser: plugins run as the configured user, not the daemon's.
func TestExecAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	cred, err := Credential("nobody")
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	p := script(t, dir, "id.sh", "id -u; exit 1")
	res := Exec(context.Background(), rule(p, 5*time.Second), 80, cred)
	if res.Status != Problem || res.Output != strconv.Itoa(int(cred.Uid)) {
		t.Fatalf("got %+v, want uid %d", res, cred.Uid)
	}
	if _, err := Credential("no-such-user-here"); err == nil {
		t.Fatal("an unknown user was accepted")
	}
}

type recorder struct {
	mu      sync.Mutex
	raised  []finding.Finding
	cleared []finding.Clear
}

func (r *recorder) Raise(f finding.Finding) {
	r.mu.Lock()
	r.raised = append(r.raised, f)
	r.mu.Unlock()
}
func (r *recorder) Observe(policy.Event) {}
func (r *recorder) Clear(c finding.Clear) {
	r.mu.Lock()
	r.cleared = append(r.cleared, c)
	r.mu.Unlock()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestReportSemantics: permanent problems raise Fatal findings of the
// rule's condition and OK clears them; temporary problems are Warnings;
// unknown changes nothing.
func TestReportSemantics(t *testing.T) {
	m := &Monitor{Source: "foo-monitor"}
	perm := Rule{Type: Permanent, Condition: "FooReady", Reason: "FooDown", Path: "/x/check.sh"}
	temp := Rule{Type: Temporary, Reason: "FooFlapped", Path: "/x/check.sh"}
	var rec recorder
	var runs []string
	p := &Runner{Log: quiet, Observe: func(s string, r Rule, res Result) { runs = append(runs, s+"/"+r.Type+"/"+string(res.Status)) }}
	p.report(m, perm, Result{Status: Problem, Output: "foo is down"}, "", &rec)
	p.report(m, perm, Result{Status: Unknown, TimedOut: true}, Problem, &rec)
	p.report(m, perm, Result{Status: OK}, Unknown, &rec)
	p.report(m, temp, Result{Status: Problem, Output: "flap"}, "", &rec)
	p.report(m, temp, Result{Status: OK}, Problem, &rec)
	if len(rec.raised) != 2 || len(rec.cleared) != 1 {
		t.Fatalf("raised %+v cleared %+v", rec.raised, rec.cleared)
	}
	f := rec.raised[0]
	if f.Severity != finding.Fatal || f.Condition != "FooReady" || f.Reason != "FooDown" || f.Message != "foo is down" || !f.Recovery.Probe || f.Key != perm.Key() {
		t.Errorf("permanent problem: %+v", f)
	}
	c := rec.cleared[0]
	if c.Condition != "FooReady" || c.Reason != "FooDown" || c.Key != perm.Key() || !c.Matches(&f) {
		t.Errorf("permanent ok: %+v", c)
	}
	if w := rec.raised[1]; w.Severity != finding.Warning || w.Reason != "FooFlapped" || w.Message != "flap" {
		t.Errorf("temporary problem: %+v", w)
	}
	if strings.Join(runs, ",") != "foo-monitor/permanent/problem,foo-monitor/permanent/unknown,foo-monitor/permanent/ok,foo-monitor/temporary/problem,foo-monitor/temporary/ok" {
		t.Errorf("runs counted: %v", runs)
	}
}

// TestRunnerClearsRemovedPlugins: at start, an active problem of a rule no
// longer configured is cleared; one of a configured rule is left to it.
func TestRunnerClearsRemovedPlugins(t *testing.T) {
	kept := Rule{Type: Permanent, Condition: "FooReady", Reason: "FooDown", Path: "/x/foo.sh"}
	m := &Monitor{Source: "foo", Rules: []Rule{kept}, Concurrency: 1}
	active := []finding.Finding{
		{Condition: "FooReady", Reason: "FooDown", Key: kept.Key(), Rule: "plugin:foo", Severity: finding.Fatal},
		{Condition: "BarReady", Reason: "BarDown", Key: "/x/bar.sh", Rule: "plugin:bar", Severity: finding.Fatal},
		{Condition: "KernelReady", Reason: "SoftLockup", Rule: "soft-lockup", Severity: finding.Fatal},
	}
	var rec recorder
	p := &Runner{Log: quiet, Active: active}
	p.Monitors = []*Monitor{m}
	p.clearOrphans(&rec)
	if len(rec.cleared) != 1 || rec.cleared[0].Reason != "BarDown" || !rec.cleared[0].Matches(&active[1]) {
		t.Fatalf("cleared %+v", rec.cleared)
	}
}

// TestRunnerRunsAndBoundsConcurrency: rules run at once at start and then
// at their interval, never more of a monitor's at a time than its
// concurrency.
func TestRunnerRunsAndBoundsConcurrency(t *testing.T) {
	dir := t.TempDir()
	counter := filepath.Join(dir, "running")
	maxFile := filepath.Join(dir, "max")
	// mkdir is atomic: each run takes a numbered slot directory, records
	// how many slots are taken, and frees its slot.
	body := `i=0; while ! mkdir ` + counter + `.$i 2>/dev/null; do i=$((i+1)); done
n=$(ls -d ` + counter + `.* | wc -l); echo $n >> ` + maxFile + `; sleep 0.3; rmdir ` + counter + `.$i; echo down; exit 1`
	p := script(t, dir, "slow.sh", body)
	var rules []Rule
	for i := range 4 {
		r := rule(p, 5*time.Second)
		r.Args = []string{strconv.Itoa(i)}
		rules = append(rules, r)
	}
	m := &Monitor{Source: "slow", Concurrency: 2, MaxOutputLength: 80, Rules: rules}
	var rec recorder
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- (&Runner{Monitors: []*Monitor{m}, Log: quiet}).Run(ctx, &rec) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rec.mu.Lock()
		n := len(rec.raised)
		rec.mu.Unlock()
		if n >= 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d problems raised", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(maxFile)
	for _, n := range strings.Fields(string(b)) {
		if n != "1" && n != "2" {
			t.Fatalf("%s plugins of a monitor with concurrency 2 ran at once (%q)", n, b)
		}
	}
}

func TestParseValidates(t *testing.T) {
	dir := t.TempDir()
	script(t, dir, "check.sh", "exit 0")
	if err := os.WriteFile(filepath.Join(dir, "noexec.sh"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	declared := func(t string) bool { return t == "NTPReady" || t == finding.KernelReady }
	good := `{"plugin": "custom", "pluginConfig": {"invoke_interval": "10s", "timeout": "5s", "max_output_length": 40, "concurrency": 2,
		"enable_message_change_based_condition_update": false, "skip_initial_status": true},
	 "source": "ntp-custom-plugin-monitor", "metricsReporting": true,
	 "conditions": [{"type": "NTPReady", "reason": "NTPIsUp", "message": "ntp service is up"}],
	 "rules": [{"type": "temporary", "reason": "NTPIsDown", "path": "./check.sh", "timeout": "3s"},
	           {"type": "permanent", "condition": "NTPReady", "reason": "NTPIsDown", "path": "./check.sh", "args": ["--x"], "invoke_interval": "1m"}]}`
	m, err := Parse([]byte(good), filepath.Join(dir, "ntp.json"), declared)
	if err != nil {
		t.Fatal(err)
	}
	r0, r1 := m.Rules[0], m.Rules[1]
	if m.Source != "ntp-custom-plugin-monitor" || m.MaxOutputLength != 40 || m.Concurrency != 2 ||
		r0.Path != filepath.Join(dir, "check.sh") || r0.Timeout != 3*time.Second || r0.Interval != 10*time.Second ||
		r1.Timeout != 5*time.Second || r1.Interval != time.Minute || r1.Key() != filepath.Join(dir, "check.sh")+" --x" {
		t.Fatalf("parsed %+v", m)
	}
	// NPD's defaults.
	m, err = Parse([]byte(`{"plugin": "custom", "source": "s", "rules": [{"type": "temporary", "reason": "R", "path": "check.sh"}]}`), filepath.Join(dir, "d.json"), declared)
	if err != nil || m.MaxOutputLength != 80 || m.Concurrency != 3 || m.Rules[0].Timeout != 5*time.Second || m.Rules[0].Interval != 30*time.Second {
		t.Fatalf("defaults: %+v %v", m, err)
	}
	bad := `{"plugin": "logs", "pluginConfig": {"invoke_interval": "10ms", "timeout": "5s", "max_output_length": 0, "concurrency": 0},
	 "source": "", "conditions": [{"type": "Ready", "reason": "KubeletReady"}],
	 "rules": [{"type": "sometimes", "reason": "x y", "path": "check.sh", "timeout": "9s"},
	           {"type": "permanent", "condition": "FooReady", "reason": "FooDown", "path": "missing.sh"},
	           {"type": "permanent", "condition": "NTPReady", "reason": "NTPIsDown", "path": "noexec.sh"}]}`
	_, err = Parse([]byte(bad), filepath.Join(dir, "bad.json"), declared)
	for _, want := range []string{`plugin "logs"`, "source: empty", "invoke_interval: 10ms", "max_output_length: 0", "concurrency: 0",
		`conditions[0]: type "Ready" is not declared`, `rules[0]: type "sometimes"`, `rules[0]: reason "x y"`, "rules[0]: timeout 9s",
		`rules[1]: condition "FooReady" is not declared`, "rules[1]: path:", "rules[2]: path " + filepath.Join(dir, "noexec.sh") + ": not an executable"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want a problem %q in:\n%v", want, err)
		}
	}
	if n := len(problems.List(err)); n != 12 {
		t.Errorf("%d problems listed, want 12:\n%v", n, err)
	}
	var pr *problems.Problem
	if !errors.As(err, &pr) || pr.File != filepath.Join(dir, "bad.json") {
		t.Errorf("problems do not name the file: %v", err)
	}
	if _, err := Parse([]byte(`{"plugin": "custom", "source": "s", "rules": [], "invoke_interval": "1s"}`), "typo.json", declared); err == nil || !strings.Contains(err.Error(), "invoke_interval") {
		t.Errorf("a misplaced key was accepted: %v", err)
	}
}
