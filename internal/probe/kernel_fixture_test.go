package probe

// Fixture-tree helpers for the kernel, runtime and storage probe tests.

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// fxTree is a host root built in a temporary directory.
type fxTree struct {
	t    *testing.T
	root string
}

func newFxTree(t *testing.T) *fxTree {
	t.Helper()
	ft := &fxTree{t: t, root: t.TempDir()}
	ft.mkdir("/proc")
	return ft
}

func (ft *fxTree) mkdir(p string) {
	ft.t.Helper()
	if err := os.MkdirAll(filepath.Join(ft.root, p), 0o755); err != nil {
		ft.t.Fatal(err)
	}
}

func (ft *fxTree) write(p, content string) {
	ft.t.Helper()
	full := filepath.Join(ft.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		ft.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		ft.t.Fatal(err)
	}
}

func (ft *fxTree) remove(p string) {
	ft.t.Helper()
	if err := os.RemoveAll(filepath.Join(ft.root, p)); err != nil {
		ft.t.Fatal(err)
	}
}

// fxProc describes one fake process.
type fxProc struct {
	pid        int
	comm       string
	state      byte
	starttime  uint64
	blkioTicks uint64
	environ    []string
}

// statLine renders a 52-field /proc/<pid>/stat line as a 6.x kernel does.
func (p fxProc) statLine() string {
	rest := make([]string, 52-2) // fields 3..52
	for i := range rest {
		rest[i] = "0"
	}
	state := p.state
	if state == 0 {
		state = 'S'
	}
	rest[0] = string(state)
	rest[22-3] = strconv.FormatUint(p.starttime, 10)
	rest[42-3] = strconv.FormatUint(p.blkioTicks, 10)
	return strconv.Itoa(p.pid) + " (" + p.comm + ") " + strings.Join(rest, " ") + "\n"
}

func (ft *fxTree) proc(p fxProc) {
	ft.t.Helper()
	dir := "/proc/" + strconv.Itoa(p.pid)
	ft.write(dir+"/stat", p.statLine())
	ft.write(dir+"/comm", p.comm+"\n")
	env := ""
	for _, e := range p.environ {
		env += e + "\x00"
	}
	ft.write(dir+"/environ", env)
}

func (ft *fxTree) env() *Env {
	return &Env{Root: ft.root, Log: discard(), Now: time.Now, Tags: map[string]bool{},
		Run: func(ctx context.Context, name string, args ...string) ([]byte, error) {
			ft.t.Fatalf("unexpected command %s %v", name, args)
			return nil, nil
		}}
}

func yamlNode(t *testing.T, s string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(s), &n); err != nil {
		t.Fatal(err)
	}
	return n.Content[0]
}

// buildProbe builds the registered probe name from a YAML section ("" =
// defaults).
func buildProbe(t *testing.T, env *Env, name, section string) Probe {
	t.Helper()
	var sec *yaml.Node
	if section != "" {
		sec = yamlNode(t, section)
	}
	regMu.Lock()
	f := factories[name]
	regMu.Unlock()
	if f == nil {
		t.Fatalf("probe %q not registered", name)
	}
	p, err := f(env, sec)
	if err != nil {
		t.Fatalf("build %s: %v", name, err)
	}
	if p == nil {
		t.Fatalf("build %s: probe not built", name)
	}
	return p
}

func mustCheck(t *testing.T, p Probe, env *Env) []Result {
	t.Helper()
	res, err := p.Check(context.Background(), env)
	if err != nil {
		t.Fatalf("%s: %v", p.Name(), err)
	}
	for _, r := range res {
		wantDescribed(t, p.Name(), r)
	}
	return res
}

// wantOne asserts exactly one result with these fields.
func wantOne(t *testing.T, res []Result, cond, reason, key, msg string) {
	t.Helper()
	if len(res) != 1 {
		t.Fatalf("want one %s result, got %+v", reason, res)
	}
	r := res[0]
	if r.Condition != cond || r.Reason != reason || r.Severity != finding.Warning || r.Key != key || r.Message != msg {
		t.Fatalf("got %+v\nwant {%s %s Warning %q key %q}", r, cond, reason, msg, key)
	}
}

func wantNone(t *testing.T, res []Result) {
	t.Helper()
	if len(res) != 0 {
		t.Fatalf("want no result, got %+v", res)
	}
}

// recoverySteps drives a probe through the Runner's own check path: the
// failing fixture raises, then after heal() one passing check is not
// enough and the second clears (DefaultPasses).
func recoverySteps(t *testing.T, p Probe, env *Env, reason, key string, heal func()) {
	t.Helper()
	r := &Runner{Env: env, Probes: []Probe{p}}
	tr := NewTracker(p.Name(), DefaultPasses)
	rec := &recorder{}
	r.checkOnce(context.Background(), p, tr, rec)
	if len(rec.raised) != 1 || rec.raised[0].Reason != reason || rec.raised[0].Key != key || !rec.raised[0].Recovery.Probe {
		t.Fatalf("first check: want %s/%s raised, got %+v", reason, key, rec.raised)
	}
	heal()
	r.checkOnce(context.Background(), p, tr, rec)
	if len(rec.cleared) != 0 {
		t.Fatalf("cleared after a single passing check: %+v", rec.cleared)
	}
	r.checkOnce(context.Background(), p, tr, rec)
	if len(rec.cleared) != 1 || rec.cleared[0].Reason != reason || rec.cleared[0].Key != key {
		t.Fatalf("want %s/%s cleared after two passing checks, got %+v", reason, key, rec.cleared)
	}
	if len(rec.raised) != 1 {
		t.Fatalf("raised again while healthy: %+v", rec.raised[1:])
	}
}
