package probe

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// netClock is a settable clock for Env.Now.
type netClock struct{ t time.Time }

func (c *netClock) now() time.Time      { return c.t }
func (c *netClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newNetClock() *netClock            { return &netClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

// netFakeRun replaces Env.Run: outputs are keyed by the command line, and a
// command with no entry fails as if it were not installed.
type netFakeRun struct {
	mu    sync.Mutex
	out   map[string]netFakeOut
	calls []string
}

type netFakeOut struct {
	out string
	err error
}

// netExitErr is a command that exited with a status, like *exec.ExitError.
type netExitErr int

func (e netExitErr) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
func (e netExitErr) ExitCode() int { return int(e) }

func (f *netFakeRun) set(cmdline, out string) { f.setErr(cmdline, out, nil) }

func (f *netFakeRun) setErr(cmdline, out string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.out[cmdline] = netFakeOut{out, err}
}

func (f *netFakeRun) unset(cmdline string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.out, cmdline)
}

func (f *netFakeRun) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		return nil, fmt.Errorf("%s run without a timeout", name)
	}
	line := strings.Join(append([]string{name}, args...), " ")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, line)
	o, ok := f.out[line]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, &exec.Error{Name: name, Err: exec.ErrNotFound})
	}
	return []byte(o.out), o.err
}

func (f *netFakeRun) called(cmdline string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.calls, cmdline)
}

// netTestEnv returns an Env rooted at root with a fake clock and runner.
func netTestEnv(t *testing.T, root string, tags ...string) (*Env, *netClock, *netFakeRun) {
	t.Helper()
	clk := newNetClock()
	fr := &netFakeRun{out: map[string]netFakeOut{}}
	env := &Env{Root: root, Log: discard(), Now: clk.now, Tags: map[string]bool{}, Run: fr.run}
	for _, tag := range tags {
		env.Tags[tag] = true
	}
	return env, clk, fr
}

// netBuild builds a registered probe with a YAML config section ("" for
// none); it returns nil when the factory says the probe does not apply.
func netBuild(t *testing.T, env *Env, name, section string) Probe {
	t.Helper()
	regMu.Lock()
	f := factories[name]
	regMu.Unlock()
	if f == nil {
		t.Fatalf("probe %s not registered", name)
	}
	var sec *yaml.Node
	if section != "" {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(section), &n); err != nil {
			t.Fatal(err)
		}
		sec = n.Content[0]
	}
	p, err := f(env, sec)
	if err != nil {
		t.Fatalf("build %s: %v", name, err)
	}
	return p
}

func netBuildErr(t *testing.T, env *Env, name, section string) error {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(section), &n); err != nil {
		t.Fatal(err)
	}
	_, err := factories[name](env, n.Content[0])
	return err
}

// netRig runs a probe through the framework's Tracker, the way the Runner
// does, so tests see raises and clears.
type netRig struct {
	t   *testing.T
	p   Probe
	env *Env
	tr  *Tracker
	rec *recorder
}

func newNetRig(t *testing.T, p Probe, env *Env) *netRig {
	t.Helper()
	if p == nil {
		t.Fatal("probe not built")
	}
	return &netRig{t: t, p: p, env: env, tr: NewTracker(p.Name(), DefaultPasses), rec: &recorder{}}
}

// check runs one check, applies it and returns its results.
func (r *netRig) check() []Result {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := r.p.Check(ctx, r.env)
	if err != nil {
		r.t.Fatalf("check: %v", err)
	}
	for _, x := range res {
		wantDescribed(r.t, r.p.Name(), x)
		if x.Condition != "NetworkingReady" {
			r.t.Fatalf("%s: condition %s", x.Reason, x.Condition)
		}
	}
	r.tr.Apply(r.env.Now(), res, r.rec)
	return res
}

// active reports whether reason/key is raised and not cleared since.
func (r *netRig) active(reason, key string) bool {
	raised := -1
	for i, f := range r.rec.raised {
		if f.Reason == reason && f.Key == key {
			raised = i
		}
	}
	if raised < 0 {
		return false
	}
	for _, c := range r.rec.cleared {
		if c.Reason == reason && c.Key == key {
			return false
		}
	}
	return true
}

func (r *netRig) clearedCount(reason, key string) int {
	n := 0
	for _, c := range r.rec.cleared {
		if c.Reason == reason && c.Key == key {
			n++
		}
	}
	return n
}

// recovers asserts the fail → raise, pass twice → clear cycle: reason/key
// must be raised now, survive one passing check and clear on the second.
func (r *netRig) recovers(reason, key string, fix func(), advance func()) {
	r.t.Helper()
	if !r.active(reason, key) {
		r.t.Fatalf("%s/%s not raised before recovery", reason, key)
	}
	fix()
	for i := 1; i <= 2; i++ {
		if advance != nil {
			advance()
		}
		if res := netFind(r.check(), reason, key); res != nil {
			r.t.Fatalf("pass %d still reports %s/%s: %s", i, reason, key, res.Message)
		}
		if i == 1 && r.clearedCount(reason, key) != 0 {
			r.t.Fatalf("%s/%s cleared after a single pass", reason, key)
		}
	}
	if r.clearedCount(reason, key) != 1 {
		r.t.Fatalf("%s/%s not cleared after two passes", reason, key)
	}
}

func netFind(res []Result, reason, key string) *Result {
	for i := range res {
		if res[i].Reason == reason && res[i].Key == key {
			return &res[i]
		}
	}
	return nil
}

func netReasons(res []Result) []string {
	var out []string
	for _, r := range res {
		out = append(out, r.Reason+"/"+r.Key)
	}
	return out
}

func netWrite(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func netMkdir(t *testing.T, root, rel string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
		t.Fatal(err)
	}
}

func netSymlink(t *testing.T, root, rel, target string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// netInstallVPCCNI creates the pod log directory by which the VPC CNI is
// detected.
func netInstallVPCCNI(t *testing.T, root, pod string) {
	t.Helper()
	netMkdir(t, root, "var/log/pods/kube-system_"+pod+"_0b6c2f7e-1111-4a6e-9c1e-3d2a1f0e9b7c/aws-vpc-cni-init")
	netMkdir(t, root, "var/log/pods/kube-system_"+pod+"_0b6c2f7e-1111-4a6e-9c1e-3d2a1f0e9b7c/aws-node")
}

func netReadTestdata(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
