package probe

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakePrivileged stands in for the helper: its answers differ from the
// fixture tree, so a probe that bypassed it would be caught.
type fakePrivileged struct {
	fakeNVMe
	procs    []Process
	commands map[string]string
	calls    []string
}

func (f *fakePrivileged) Processes(_ context.Context, environ bool) ([]Process, error) {
	f.calls = append(f.calls, "processes")
	out := make([]Process, len(f.procs))
	copy(out, f.procs)
	if !environ {
		for i := range out {
			out[i].Environ = -1
		}
	}
	return out, nil
}

func (f *fakePrivileged) Command(_ context.Context, name string) ([]byte, error) {
	f.calls = append(f.calls, "command "+name)
	out, ok := f.commands[name]
	if !ok {
		return nil, errors.New("helper: no such command")
	}
	return []byte(out), nil
}

func TestProbesUsePrivilegedHelper(t *testing.T) {
	ft := newFxTree(t)
	// The fixture's own /proc has one quiet process; the helper sees more.
	ft.proc(fxProc{pid: 1, comm: "systemd", environ: []string{"HOME=/"}})
	priv := &fakePrivileged{procs: []Process{
		{PID: 1, Comm: "systemd", State: "S", Environ: 1},
		{PID: 500, Comm: "java", State: "S", Environ: 1500},
	}}
	for i := 0; i < 25; i++ {
		priv.procs = append(priv.procs, Process{PID: 1000 + i, Comm: "defunct", State: "Z", Environ: 0})
	}
	env := ft.env()
	env.Privileged = priv

	res := mustCheck(t, buildProbe(t, env, "large-environment", ""), env)
	wantOne(t, res, "KernelReady", "LargeEnvironment", "500/java", "PID 500 has a higher than normal environment variable count at 1500")

	z := buildProbe(t, env, "zombies", "consecutive: 1")
	if res := mustCheck(t, z, env); len(res) != 1 || res[0].Reason != "ExcessiveZombieProcesses" || !strings.Contains(res[0].Message, "25 zombie") {
		t.Errorf("zombies through the helper: %+v", res)
	}
	if got := strings.Join(priv.calls, ","); got != "processes,processes" {
		t.Errorf("helper calls %q, want one process listing per probe", got)
	}
}

func TestIPTablesThroughPrivilegedHelper(t *testing.T) {
	ft := newFxTree(t)
	env := ft.env() // its Run fails the test if called
	priv := &fakePrivileged{commands: map[string]string{
		"iptables-save":  "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 192.0.2.0/24 -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n",
		"ip6tables-save": "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
	}}
	env.Privileged = priv
	res := mustCheck(t, buildProbe(t, env, "iptables", ""), env)
	if len(res) == 0 {
		t.Errorf("the helper's REJECT rule was not reported")
	}
	if got := strings.Join(priv.calls, ","); got != "command iptables-save,command ip6tables-save" {
		t.Errorf("helper calls %q", got)
	}
}

func TestEBSThroughPrivilegedHelper(t *testing.T) {
	ft := newFxTree(t)
	ft.write("/dev/nvme0n1", "")
	env := ft.env()
	priv := &fakePrivileged{fakeNVMe: fakeNVMe{
		identify: map[string][]byte{"nvme0n1": identifyData(0x1D0F, "vol0a1b2c3d4e5f60718", "Amazon Elastic Block Store")},
		pages:    map[string][]byte{"nvme0n1": ebsPage(0, 0, 0, 0)},
	}}
	env.Privileged = priv
	p := buildProbe(t, env, "ebs-performance", "").(*ebsPerformanceProbe)
	if p.admin != NVMeAdmin(priv) {
		t.Fatalf("EBS probe issues NVMe commands through %T, want the helper", p.admin)
	}
	wantNone(t, mustCheck(t, p, env))
}

func TestCountEnviron(t *testing.T) {
	for in, want := range map[string]int{
		"": 0, "\x00\x00": 0, "A=1\x00B=2\x00": 2, "A=1\x00\x00B=2": 2, "A=1": 1,
	} {
		if got := countEnviron([]byte(in)); got != want {
			t.Errorf("countEnviron(%q) = %d, want %d", in, got, want)
		}
	}
}

// readInto reads a file larger than the buffer whole, and reuses the
// buffer for a smaller one.
func TestReadInto(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("0123456789abcdef", 1000)
	if err := os.WriteFile(filepath.Join(dir, "big"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "small"), []byte("x y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	buf, err := readInto(make([]byte, 0, 16), filepath.Join(dir, "big"))
	if err != nil || string(buf) != big {
		t.Fatalf("big: %d bytes, %v", len(buf), err)
	}
	if buf, err = readInto(buf, filepath.Join(dir, "small")); err != nil || string(buf) != "x y\n" {
		t.Fatalf("small: %q, %v", buf, err)
	}
	if _, err = readInto(buf, filepath.Join(dir, "absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("absent: %v", err)
	}
}
