// Package probetest is the one rig for probe tests: a host tree under a
// temporary root (what --root points at), an Env with a settable clock and
// a fake command runner, and a Rig that runs a probe through the
// framework's Tracker so that tests see raises and clears as the daemon
// would.
package probetest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// Tree is a host root built in a temporary directory.
type Tree struct {
	T    *testing.T
	Root string
}

// NewTree returns an empty host tree with a /proc.
func NewTree(t *testing.T) *Tree {
	t.Helper()
	ft := At(t, t.TempDir())
	ft.Mkdir("/proc")
	return ft
}

// At returns the tree rooted at an existing directory.
func At(t *testing.T, root string) *Tree { return &Tree{T: t, Root: root} }

func (ft *Tree) Mkdir(p string) {
	ft.T.Helper()
	if err := os.MkdirAll(filepath.Join(ft.Root, p), 0o755); err != nil {
		ft.T.Fatal(err)
	}
}

func (ft *Tree) Write(p, content string) {
	ft.T.Helper()
	full := filepath.Join(ft.Root, p)
	ft.Mkdir(filepath.Dir(p))
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		ft.T.Fatal(err)
	}
}

func (ft *Tree) Symlink(p, target string) {
	ft.T.Helper()
	ft.Mkdir(filepath.Dir(p))
	if err := os.Symlink(target, filepath.Join(ft.Root, p)); err != nil {
		ft.T.Fatal(err)
	}
}

func (ft *Tree) Remove(p string) {
	ft.T.Helper()
	if err := os.RemoveAll(filepath.Join(ft.Root, p)); err != nil {
		ft.T.Fatal(err)
	}
}

// Proc describes one fake process.
type Proc struct {
	PID        int
	Comm       string
	State      byte
	Starttime  uint64
	BlkioTicks uint64
	Environ    []string
}

// StatLine renders a 52-field /proc/<pid>/stat line as a 6.x kernel does.
func (p Proc) StatLine() string {
	rest := make([]string, 52-2) // fields 3..52
	for i := range rest {
		rest[i] = "0"
	}
	state := p.State
	if state == 0 {
		state = 'S'
	}
	rest[0] = string(state)
	rest[22-3] = strconv.FormatUint(p.Starttime, 10)
	rest[42-3] = strconv.FormatUint(p.BlkioTicks, 10)
	return strconv.Itoa(p.PID) + " (" + p.Comm + ") " + strings.Join(rest, " ") + "\n"
}

// Proc writes the process's stat, comm and environ.
func (ft *Tree) Proc(p Proc) {
	ft.T.Helper()
	dir := "/proc/" + strconv.Itoa(p.PID)
	ft.Write(dir+"/stat", p.StatLine())
	ft.Write(dir+"/comm", p.Comm+"\n")
	env := ""
	for _, e := range p.Environ {
		env += e + "\x00"
	}
	ft.Write(dir+"/environ", env)
}

// Fake returns an Env rooted at the tree with the given host tags, a
// settable clock and a fake command runner.
func (ft *Tree) Fake(tags ...string) (*probe.Env, *Clock, *FakeRun) {
	clk := &Clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	fr := &FakeRun{out: map[string]fakeOut{}}
	env := &probe.Env{Root: ft.Root, Log: Discard(), Now: clk.Now, Tags: map[string]bool{}, Run: fr.Run}
	for _, tag := range tags {
		env.Tags[tag] = true
	}
	return env, clk, fr
}

// Env is Fake on the wall clock, for probes that compare with the time
// of files or of the fixtures they are given.
func (ft *Tree) Env(tags ...string) *probe.Env {
	env, _, _ := ft.Fake(tags...)
	env.Now = time.Now
	return env
}

// Discard is a logger that drops everything.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Clock is a settable clock for Env.Now.
type Clock struct{ t time.Time }

func (c *Clock) Now() time.Time      { return c.t }
func (c *Clock) Add(d time.Duration) { c.t = c.t.Add(d) }

// FakeRun replaces Env.Run: outputs are keyed by the command line, and a
// command with no entry fails as if it were not installed.
type FakeRun struct {
	mu    sync.Mutex
	out   map[string]fakeOut
	calls []string
}

type fakeOut struct {
	out string
	err error
}

// ExitErr is a command that exited with a status, like *exec.ExitError.
type ExitErr int

func (e ExitErr) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
func (e ExitErr) ExitCode() int { return int(e) }

func (f *FakeRun) Set(cmdline, out string) { f.SetErr(cmdline, out, nil) }

func (f *FakeRun) SetErr(cmdline, out string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.out[cmdline] = fakeOut{out, err}
}

func (f *FakeRun) Unset(cmdline string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.out, cmdline)
}

// Run is the Env.Run it stands for; a command run without a deadline is
// refused, since a real one could hang the probe.
func (f *FakeRun) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
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

func (f *FakeRun) Called(cmdline string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.calls, cmdline)
}

// Section parses a probe's YAML config section ("" for none).
func Section(t *testing.T, s string) *yaml.Node {
	t.Helper()
	if s == "" {
		return nil
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(s), &n); err != nil {
		t.Fatal(err)
	}
	return n.Content[0]
}

// Build builds the registered probe name from a YAML section ("" for
// none); it returns nil when the probe does not apply to the host.
func Build(t *testing.T, env *probe.Env, name, section string) probe.Probe {
	t.Helper()
	p, err := BuildErr(t, env, name, section)
	if err != nil {
		t.Fatalf("build %s: %v", name, err)
	}
	return p
}

// BuildErr is Build for sections that may be refused.
func BuildErr(t *testing.T, env *probe.Env, name, section string) (probe.Probe, error) {
	t.Helper()
	if !slices.Contains(probe.Names(), name) {
		t.Fatalf("probe %s not registered", name)
	}
	return probe.BuildOne(env, name, Section(t, section))
}

// Check runs one check that must succeed, and checks every result against
// its declaration.
func Check(t *testing.T, p probe.Probe, env *probe.Env) []probe.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := p.Check(ctx, env)
	if err != nil {
		t.Fatalf("%s: %v", p.Name(), err)
	}
	for _, r := range res {
		Described(t, p.Name(), r)
	}
	return res
}

// Described fails when a result's reason is not declared for the probe
// that reported it, or its condition or severity is not the declaration's.
func Described(t testing.TB, probeName string, r probe.Result) {
	t.Helper()
	in, ok := reason.Lookup(r.Reason)
	if !ok || in.Detector != "probe:"+probeName {
		t.Errorf("%s reported %s, which is not declared for it (found %+v)", probeName, r.Reason, in)
		return
	}
	if in.Condition != r.Condition || in.Severity != r.Severity {
		t.Errorf("%s reported %s as %s/%s, declared as %s/%s", probeName, r.Reason, r.Condition, r.Severity, in.Condition, in.Severity)
	}
}

// WantOne asserts exactly one Warning result with these fields.
func WantOne(t *testing.T, res []probe.Result, cond, reason, key, msg string) {
	t.Helper()
	if len(res) != 1 {
		t.Fatalf("want one %s result, got %+v", reason, res)
	}
	r := res[0]
	if r.Condition != cond || r.Reason != reason || r.Severity != finding.Warning || r.Key != key || r.Message != msg {
		t.Fatalf("got %+v\nwant {%s %s Warning %q key %q}", r, cond, reason, msg, key)
	}
}

func WantNone(t *testing.T, res []probe.Result) {
	t.Helper()
	if len(res) != 0 {
		t.Fatalf("want no result, got %+v", res)
	}
}

// WantQuiet asserts that n successive checks of p report nothing.
func WantQuiet(t *testing.T, p probe.Probe, env *probe.Env, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if res := Check(t, p, env); len(res) != 0 {
			t.Fatalf("check %d of %d: want no result, got %+v", i, n, res)
		}
	}
}

// Find returns the result for reason/key, or nil.
func Find(res []probe.Result, reason, key string) *probe.Result {
	for i := range res {
		if res[i].Reason == reason && res[i].Key == key {
			return &res[i]
		}
	}
	return nil
}

// Reasons lists results as reason/key.
func Reasons(res []probe.Result) []string {
	var out []string
	for _, r := range res {
		out = append(out, r.Reason+"/"+r.Key)
	}
	return out
}

// Testdata reads a file under the test's testdata directory.
func Testdata(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Recorder is a detector.Emitter that keeps what it is given.
type Recorder struct {
	Raised  []finding.Finding
	Cleared []finding.Clear
}

func (r *Recorder) Raise(f finding.Finding) { r.Raised = append(r.Raised, f) }
func (r *Recorder) Clear(c finding.Clear)   { r.Cleared = append(r.Cleared, c) }
func (r *Recorder) Observe(policy.Event)    {}

// Rig runs a probe through the framework's Tracker, the way the Runner
// does, so tests see raises and clears.
type Rig struct {
	t   *testing.T
	P   probe.Probe
	Env *probe.Env
	tr  *probe.Tracker
	Rec *Recorder
}

func NewRig(t *testing.T, p probe.Probe, env *probe.Env) *Rig {
	t.Helper()
	if p == nil {
		t.Fatal("probe not built")
	}
	return &Rig{t: t, P: p, Env: env, tr: probe.NewTracker(p.Name(), probe.DefaultPasses), Rec: &Recorder{}}
}

// Rig builds the registered probe name from section on a Fake Env of the
// tree and rigs it; it returns the Env's clock and command runner.
func (ft *Tree) Rig(name, section string) (*Rig, *Clock, *FakeRun) {
	ft.T.Helper()
	env, clk, fr := ft.Fake()
	return NewRig(ft.T, Build(ft.T, env, name, section), env), clk, fr
}

// Check runs one check, applies it and returns its results.
func (r *Rig) Check() []probe.Result {
	r.t.Helper()
	res := Check(r.t, r.P, r.Env)
	r.tr.Apply(r.Env.Now(), res, r.Rec)
	return res
}

// Active reports whether reason/key is raised and not cleared since.
func (r *Rig) Active(reason, key string) bool {
	raised := slices.IndexFunc(r.Rec.Raised, func(f finding.Finding) bool { return f.Reason == reason && f.Key == key })
	return raised >= 0 && r.ClearedCount(reason, key) == 0
}

func (r *Rig) ClearedCount(reason, key string) int {
	n := 0
	for _, c := range r.Rec.Cleared {
		if c.Reason == reason && c.Key == key {
			n++
		}
	}
	return n
}

// Recovers asserts the fail → raise, pass twice → clear cycle: reason/key
// must be raised now, survive one passing check after fix and clear on the
// second; advance, when set, runs before each check.
func (r *Rig) Recovers(reason, key string, fix func(), advance func()) {
	r.t.Helper()
	if !r.Active(reason, key) {
		r.t.Fatalf("%s/%s not raised before recovery", reason, key)
	}
	for _, f := range r.Rec.Raised {
		if f.Reason == reason && f.Key == key && !f.Recovery.Probe {
			r.t.Fatalf("%s/%s raised without probe recovery: %+v", reason, key, f)
		}
	}
	fix()
	for i := 1; i <= probe.DefaultPasses; i++ {
		if advance != nil {
			advance()
		}
		if res := Find(r.Check(), reason, key); res != nil {
			r.t.Fatalf("pass %d still reports %s/%s: %s", i, reason, key, res.Message)
		}
		if i < probe.DefaultPasses && r.ClearedCount(reason, key) != 0 {
			r.t.Fatalf("%s/%s cleared after %d passes", reason, key, i)
		}
	}
	if r.ClearedCount(reason, key) != 1 {
		r.t.Fatalf("%s/%s not cleared after %d passes", reason, key, probe.DefaultPasses)
	}
}

// RecoverySteps checks that a probe raises reason/key on the failing tree,
// then clears it only once it has passed DefaultPasses times after heal.
func RecoverySteps(t *testing.T, p probe.Probe, env *probe.Env, reason, key string, heal func()) {
	t.Helper()
	r := NewRig(t, p, env)
	r.Check()
	r.Recovers(reason, key, heal, nil)
	if n := len(r.Rec.Raised); n != 1 {
		t.Fatalf("raised %d times, want once: %+v", n, r.Rec.Raised)
	}
}
