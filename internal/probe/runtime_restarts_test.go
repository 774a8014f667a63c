package probe

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
func restartsFixture(t *testing.T, counts map[string]uint32) (*repeatedRestartProbe, *fakeRestarts, *Env) {
	ft := newFxTree(t)
	ft.write("/run/dbus/system_bus_socket", "")
	env := ft.env()
	fake := &fakeRestarts{counts: counts}
	p := buildProbe(t, env, "repeated-restart", "").(*repeatedRestartProbe)
	p.connect = func(_ context.Context, socket string) (serviceRestarts, error) {
		if socket != filepath.Join(ft.root, "run/dbus/system_bus_socket") {
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
	wantNone(t, mustCheck(t, p, env))
	fake.set("kubelet.service", 7)
	fake.set("containerd.service", 4)
	fake.set("nvidia-persistenced.service", 9) // loaded after the first check
	res := mustCheck(t, p, env)
	want := []Result{
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
	wantNone(t, mustCheck(t, p, env))
	fake.set("kubelet.service", 3) // grew, but not above 3
	wantNone(t, mustCheck(t, p, env))
	fake.set("kubelet.service", 50)
	mustCheck(t, p, env)
	wantNone(t, mustCheck(t, p, env)) // high but unchanged
	fake.set("kubelet.service", 1)    // reset by a manual restart
	wantNone(t, mustCheck(t, p, env))
}

func TestRepeatedRestartBaselineIsNotZero(t *testing.T) {
	// A daemon start on a node whose kubelet restarted 40 times last week
	// reports nothing (NMA reports it once per agent start).
	p, _, env := restartsFixture(t, map[string]uint32{"kubelet.service": 40})
	wantNone(t, mustCheck(t, p, env))
	wantNone(t, mustCheck(t, p, env))
}

func TestRepeatedRestartRecovers(t *testing.T) {
	p, fake, env := restartsFixture(t, map[string]uint32{"kubelet.service": 4})
	mustCheck(t, p, env)
	fake.set("kubelet.service", 6)
	recoverySteps(t, p, env, "KubeletRepeatedRestart", "kubelet.service", func() {})
}

func TestRepeatedRestartErrorRaisesAndClearsNothing(t *testing.T) {
	p, fake, env := restartsFixture(t, map[string]uint32{"kubelet.service": 4})
	mustCheck(t, p, env)
	fake.err = errors.New("bus gone")
	if _, err := p.Check(t.Context(), env); err == nil {
		t.Fatal("want the bus error")
	}
}

func TestRepeatedRestartUnavailableWithoutBus(t *testing.T) {
	ft := newFxTree(t)
	env := ft.env()
	p := buildProbe(t, env, "repeated-restart", "").(*repeatedRestartProbe)
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
	env := newFxTree(t).env()
	env.Tags["bottlerocket"] = true
	p, err := factories["repeated-restart"](env, nil)
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

const testBusConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path=SOCKET</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

// startTestBus runs a private dbus-daemon listening where the host's
// system bus would be under root.
func startTestBus(t *testing.T, root string) string {
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("dbus-daemon not installed; the D-Bus path is covered by the fake-based tests only")
	}
	sock := filepath.Join(root, "run/dbus/system_bus_socket")
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "bus.conf")
	if err := os.WriteFile(conf, []byte(strings.ReplaceAll(testBusConfig, "SOCKET", sock)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config-file="+conf, "--nofork", "--nopidfile")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start dbus-daemon: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("dbus-daemon did not create its socket")
	return ""
}

func TestRepeatedRestartOverRealDBus(t *testing.T) {
	ft := newFxTree(t)
	sock := startTestBus(t, ft.root)
	// Bounded: a misbehaving bus must fail the test, not hang the package.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := ownBusName(t, ctx, sock, "org.freedesktop.systemd1")
	sd := &fakeSystemd{conn: conn, props: map[string]*prop.Properties{}}
	sd.addService(t, "kubelet.service", 4)
	sd.addService(t, "nvidia-persistenced.service", 0)
	sd.addService(t, "sshd.service", 2)
	sd.units = append(sd.units, fakeUnitStatus{Name: "dev-vda.device", Path: "/org/freedesktop/systemd1/unit/dev_2dvda_2edevice", JobPath: "/"})
	if err := conn.Export(sd, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"); err != nil {
		t.Fatal(err)
	}

	env := ft.env()
	p := buildProbe(t, env, "repeated-restart", "") // the real dialler
	check := func() []Result {
		res, err := p.Check(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	wantNone(t, check())
	sd.props["kubelet.service"].SetMust("org.freedesktop.systemd1.Service", "NRestarts", uint32(6))
	sd.props["nvidia-persistenced.service"].SetMust("org.freedesktop.systemd1.Service", "NRestarts", uint32(5))
	res := check()
	if len(res) != 2 || res[0].Reason != "KubeletRepeatedRestart" || res[1].Reason != "Nvidia-PersistencedRepeatedRestart" ||
		res[0].Message != `Systemd unit "kubelet.service" has restarted (NRestarts 4 -> 6)` {
		t.Fatalf("got %+v", res)
	}
}

// ownBusName connects to the test bus at sock and takes name on it, as the
// service the probe talks to would; the connection closes with the test.
func ownBusName(t *testing.T, ctx context.Context, sock, name string) *godbus.Conn {
	t.Helper()
	conn, err := godbus.Dial("unix:path="+sock, godbus.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Hello(); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(name, godbus.NameFlagDoNotQueue); err != nil || reply != godbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v %v", name, reply, err)
	}
	return conn
}
