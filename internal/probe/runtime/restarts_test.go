package runtime

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// fakeRestarts is a serviceRestarts whose counters the test sets.
type fakeRestarts struct {
	mu     sync.Mutex
	counts map[string]uint32
	err    error
	closed int
}

func (f *fakeRestarts) Restarts(context.Context) (map[string]uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := map[string]uint32{}
	for k, v := range f.counts {
		out[k] = v
	}
	return out, nil
}

func (f *fakeRestarts) Close() { f.mu.Lock(); f.closed++; f.mu.Unlock() }

func (f *fakeRestarts) set(unit string, n uint32) {
	f.mu.Lock()
	f.counts[unit] = n
	f.mu.Unlock()
}

// restartsFixture builds the probe against a fixture tree that has a bus
// socket (so that the probe does not consider D-Bus absent) and a fake
// systemd.
func restartsFixture(t *testing.T, counts map[string]uint32) (*repeatedRestartProbe, *fakeRestarts, *probe.Env) {
	ft := probetest.NewTree(t)
	ft.Write("/run/dbus/system_bus_socket", "")
	env := ft.Env()
	fake := &fakeRestarts{counts: counts}
	p := probetest.Build(t, env, "repeated-restart", "").(*repeatedRestartProbe)
	p.connect = func(_ context.Context, socket string) (serviceRestarts, error) {
		if socket != filepath.Join(ft.Root, "run/dbus/system_bus_socket") {
			t.Errorf("dialled %s, want the socket under the host root", socket)
		}
		return fake, nil
	}
	return p, fake, env
}

func TestRestartReasonName(t *testing.T) {
	for unit, want := range map[string]string{
		"kubelet.service":             "KubeletRepeatedRestart",
		"nvidia-persistenced.service": "Nvidia-PersistencedRepeatedRestart",
		"my-custom-service.service":   "My-Custom-ServiceRepeatedRestart",
		"containerd.service":          "ContainerdRepeatedRestart",
		"getty@tty1.service":          "Getty@Tty1RepeatedRestart",
		"foo_bar.service":             "Foo_barRepeatedRestart",
		"foo.bar.service":             "Foo.barRepeatedRestart",
		"foo..bar.service":            "Foo..BarRepeatedRestart",
		"ABC-DEF.service":             "Abc-DefRepeatedRestart",
		"9abc.service":                "9AbcRepeatedRestart",
		`foo\x2dbar.service`:          `Foo\X2dbarRepeatedRestart`,
		"élan-ÉCOLE.service":          "Élan-ÉcoleRepeatedRestart",
	} {
		if got := restartReason(unit); got != want {
			t.Errorf("%s: got %s, want %s", unit, got, want)
		}
	}
}

func TestRepeatedRestartFiresForEveryUnit(t *testing.T) {
	p, fake, env := restartsFixture(t, map[string]uint32{"kubelet.service": 5, "containerd.service": 1, "sshd.service": 0})
	// The first check is the baseline: restarts from before we ran are
	// not news.
	probetest.WantNone(t, probetest.Check(t, p, env))
	fake.set("kubelet.service", 7)
	fake.set("containerd.service", 4)
	fake.set("nvidia-persistenced.service", 9) // loaded after the first check
	res := probetest.Check(t, p, env)
	want := []probe.Result{
		{Condition: finding.ContainerRuntimeReady, Reason: "ContainerdRepeatedRestart", Severity: finding.Warning,
			Message: `Systemd unit "containerd.service" has restarted (NRestarts 1 -> 4)`, Key: "containerd.service"},
		{Condition: finding.ContainerRuntimeReady, Reason: "KubeletRepeatedRestart", Severity: finding.Warning,
			Message: `Systemd unit "kubelet.service" has restarted (NRestarts 5 -> 7)`, Key: "kubelet.service"},
		{Condition: finding.ContainerRuntimeReady, Reason: "Nvidia-PersistencedRepeatedRestart", Severity: finding.Warning,
			Message: `Systemd unit "nvidia-persistenced.service" has restarted (NRestarts 0 -> 9)`, Key: "nvidia-persistenced.service"},
	}
	if len(res) != len(want) {
		t.Fatalf("got %+v\nwant %+v", res, want)
	}
	for i := range want {
		if res[i] != want[i] {
			t.Errorf("result %d: got %+v\nwant %+v", i, res[i], want[i])
		}
	}
	if fake.closed != 2 {
		t.Errorf("connection closed %d times after 2 checks, want 2", fake.closed)
	}
}

func TestRepeatedRestartQuiet(t *testing.T) {
	p, fake, env := restartsFixture(t, map[string]uint32{"kubelet.service": 2})
	probetest.WantNone(t, probetest.Check(t, p, env))
	fake.set("kubelet.service", 3) // grew, but not above 3
	probetest.WantNone(t, probetest.Check(t, p, env))
	fake.set("kubelet.service", 50)
	probetest.Check(t, p, env)
	probetest.WantNone(t, probetest.Check(t, p, env)) // high but unchanged
	fake.set("kubelet.service", 1)                    // reset by a manual restart
	probetest.WantNone(t, probetest.Check(t, p, env))
}

func TestRepeatedRestartBaselineIsNotZero(t *testing.T) {
	// A daemon start on a node whose kubelet restarted 40 times last week
	// reports nothing (NMA reports it once per agent start).
	p, _, env := restartsFixture(t, map[string]uint32{"kubelet.service": 40})
	probetest.WantNone(t, probetest.Check(t, p, env))
	probetest.WantNone(t, probetest.Check(t, p, env))
}

func TestRepeatedRestartRecovers(t *testing.T) {
	p, fake, env := restartsFixture(t, map[string]uint32{"kubelet.service": 4})
	probetest.Check(t, p, env)
	fake.set("kubelet.service", 6)
	probetest.RecoverySteps(t, p, env, "KubeletRepeatedRestart", "kubelet.service", func() {})
}

func TestRepeatedRestartErrorRaisesAndClearsNothing(t *testing.T) {
	p, fake, env := restartsFixture(t, map[string]uint32{"kubelet.service": 4})
	probetest.Check(t, p, env)
	fake.err = errors.New("bus gone")
	if _, err := p.Check(t.Context(), env); err == nil {
		t.Fatal("want the bus error")
	}
}

func TestRepeatedRestartUnavailableWithoutBus(t *testing.T) {
	ft := probetest.NewTree(t)
	env := ft.Env()
	p := probetest.Build(t, env, "repeated-restart", "").(*repeatedRestartProbe)
	p.connect = func(context.Context, string) (serviceRestarts, error) {
		t.Fatal("dialled a bus that does not exist")
		return nil, nil
	}
	res, err := p.Check(t.Context(), env)
	if err != nil || len(res) != 0 {
		t.Fatalf("no bus: want (nil, nil), got %+v, %v", res, err)
	}
}

func TestRepeatedRestartSkippedOnBottlerocket(t *testing.T) {
	env := probetest.NewTree(t).Env()
	env.Tags["bottlerocket"] = true
	p, err := probetest.BuildErr(t, env, "repeated-restart", "")
	if err != nil || p != nil {
		t.Fatalf("bottlerocket: want no probe, got %v, %v", p, err)
	}
}

// --- a real D-Bus: dbus-daemon with a fake systemd manager on it ----------

// fakeSystemd serves the two systemd calls the probe makes.
type fakeSystemd struct {
	conn  *godbus.Conn
	units []fakeUnitStatus
	props map[string]*prop.Properties
}

// fakeUnitStatus has the D-Bus signature of ListUnits' entries (ssssssouso).
type fakeUnitStatus struct {
	Name, Description, LoadState, ActiveState, SubState, Followed string
	Path                                                          godbus.ObjectPath
	JobID                                                         uint32
	JobType                                                       string
	JobPath                                                       godbus.ObjectPath
}

func (f *fakeSystemd) ListUnits() ([]fakeUnitStatus, *godbus.Error) { return f.units, nil }

func (f *fakeSystemd) addService(t *testing.T, name string, restarts uint32) {
	path := godbus.ObjectPath("/org/freedesktop/systemd1/unit/" + sddbus.PathBusEscape(name))
	f.units = append(f.units, fakeUnitStatus{Name: name, LoadState: "loaded", ActiveState: "active", SubState: "running", Path: path, JobPath: "/"})
	props, err := prop.Export(f.conn, path, prop.Map{
		"org.freedesktop.systemd1.Service": {"NRestarts": {Value: restarts, Writable: true, Emit: prop.EmitFalse}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.props[name] = props
}

func TestRepeatedRestartOverRealDBus(t *testing.T) {
	ft := probetest.NewTree(t)
	sock := probetest.SystemBus(t, ft.Root)
	// Bounded: a misbehaving bus must fail the test, not hang the package.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := probetest.OwnBusName(t, ctx, sock, "org.freedesktop.systemd1")
	sd := &fakeSystemd{conn: conn, props: map[string]*prop.Properties{}}
	sd.addService(t, "kubelet.service", 4)
	sd.addService(t, "nvidia-persistenced.service", 0)
	sd.addService(t, "sshd.service", 2)
	sd.units = append(sd.units, fakeUnitStatus{Name: "dev-vda.device", Path: "/org/freedesktop/systemd1/unit/dev_2dvda_2edevice", JobPath: "/"})
	if err := conn.Export(sd, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"); err != nil {
		t.Fatal(err)
	}

	env := ft.Env()
	p := probetest.Build(t, env, "repeated-restart", "") // the real dialler
	check := func() []probe.Result {
		res, err := p.Check(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	probetest.WantNone(t, check())
	sd.props["kubelet.service"].SetMust("org.freedesktop.systemd1.Service", "NRestarts", uint32(6))
	sd.props["nvidia-persistenced.service"].SetMust("org.freedesktop.systemd1.Service", "NRestarts", uint32(5))
	res := check()
	if len(res) != 2 || res[0].Reason != "KubeletRepeatedRestart" || res[1].Reason != "Nvidia-PersistencedRepeatedRestart" ||
		res[0].Message != `Systemd unit "kubelet.service" has restarted (NRestarts 4 -> 6)` {
		t.Fatalf("got %+v", res)
	}
}
