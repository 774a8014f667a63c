package kernel

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"

	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
	"golang.org/x/sys/unix"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// fakeAdjtimex returns a timex with status, after checking that the probe
// asked for a read only.
func fakeAdjtimex(t *testing.T, status *int32, err *error) func(*unix.Timex) (int, error) {
	return func(tx *unix.Timex) (int, error) {
		if tx.Modes != 0 {
			t.Fatalf("adjtimex called with modes %#x: the probe must only read", tx.Modes)
		}
		if *err != nil {
			return -1, *err
		}
		tx.Status = *status
		return unix.TIME_OK, nil
	}
}

func clockProbe(t *testing.T, env *probe.Env, status *int32, err *error) probe.Probe {
	p := probetest.Build(t, env, "clock-sync", "").(*clockSyncProbe)
	p.adjtimex = fakeAdjtimex(t, status, err)
	return p
}

const clockMessage = "The kernel clock is not synchronized to any time source (STA_UNSYNC); time drift may break time-sensitive workloads"

func TestClockUnsynchronizedFires(t *testing.T) {
	env := probetest.NewTree(t).Env()
	status, err := int32(unix.STA_UNSYNC|unix.STA_PLL), error(nil)
	res := probetest.Check(t, clockProbe(t, env, &status, &err), env)
	probetest.WantOne(t, res, finding.KernelReady, "ClockUnsynchronized", "", clockMessage)
}

func TestClockSynchronizedQuiet(t *testing.T) {
	env := probetest.NewTree(t).Env()
	status, err := int32(unix.STA_PLL), error(nil)
	probetest.WantNone(t, probetest.Check(t, clockProbe(t, env, &status, &err), env))
}

func TestClockSyscallFailureIsNotAFinding(t *testing.T) {
	env := probetest.NewTree(t).Env()
	status, err := int32(unix.STA_UNSYNC), error(unix.EPERM)
	res, cerr := clockProbe(t, env, &status, &err).Check(t.Context(), env)
	if !errors.Is(cerr, unix.EPERM) || len(res) != 0 {
		t.Fatalf("want the syscall error and no result, got %v, %+v", cerr, res)
	}
}

func TestClockRecovers(t *testing.T) {
	env := probetest.NewTree(t).Env()
	status, err := int32(unix.STA_UNSYNC), error(nil)
	p := clockProbe(t, env, &status, &err)
	probetest.RecoverySteps(t, p, env, "ClockUnsynchronized", "", func() { status = 0 })
}

func TestClockRealSyscall(t *testing.T) {
	// The real adjtimex must at least be callable read-only here.
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err != nil {
		t.Skipf("adjtimex unavailable in this sandbox: %v", err)
	}
	env := probetest.NewTree(t).Env()
	if _, err := probetest.Build(t, env, "clock-sync", "").Check(t.Context(), env); err != nil {
		t.Fatal(err)
	}
}

// --- timedated over D-Bus first, adjtimex as the fallback ------------------

const clockTimedatedMessage = "The kernel clock is not synchronized to any time source (timedated NTPSynchronized=false); " +
	"time drift may break time-sensitive workloads"

var errTimedateUnknown = godbus.Error{
	Name: "org.freedesktop.DBus.Error.ServiceUnknown",
	Body: []any{"The name org.freedesktop.timedate1 was not provided by any .service files"},
}

// timedatedProbe is a clock-sync probe whose timedate1 read answers
// synced/err and whose adjtimex answers status/adjErr; adjCalls counts
// the fallback's calls.
func timedatedProbe(t *testing.T, env *probe.Env, synced *bool, err *error, status *int32, adjErr *error, adjCalls *int) *clockSyncProbe {
	p := probetest.Build(t, env, "clock-sync", "").(*clockSyncProbe)
	wantSocket := filepath.Join(env.Root, "run/dbus/system_bus_socket")
	p.ntpSynchronized = func(ctx context.Context, socket string) (bool, error) {
		if socket != wantSocket {
			t.Errorf("timedate1 asked at %s, want %s", socket, wantSocket)
		}
		if _, ok := ctx.Deadline(); !ok {
			t.Error("timedate1 read without a deadline")
		}
		return *synced, *err
	}
	adj := fakeAdjtimex(t, status, adjErr)
	p.adjtimex = func(tx *unix.Timex) (int, error) { *adjCalls++; return adj(tx) }
	return p
}

func TestClockTimedatedSynchronized(t *testing.T) {
	env := probetest.NewTree(t).Env()
	synced, err, status, adjErr, calls := true, error(nil), int32(unix.STA_UNSYNC), error(nil), 0
	probetest.WantNone(t, probetest.Check(t, timedatedProbe(t, env, &synced, &err, &status, &adjErr, &calls), env))
	if calls != 0 {
		t.Fatalf("adjtimex called %d times although timedate1 answered", calls)
	}
}

func TestClockTimedatedUnsynchronized(t *testing.T) {
	env := probetest.NewTree(t).Env()
	synced, err, status, adjErr, calls := false, error(nil), int32(0), error(unix.EPERM), 0
	p := timedatedProbe(t, env, &synced, &err, &status, &adjErr, &calls)
	probetest.WantOne(t, probetest.Check(t, p, env), finding.KernelReady, "ClockUnsynchronized", "", clockTimedatedMessage)
	if calls != 0 {
		t.Fatalf("adjtimex called %d times although timedate1 answered", calls)
	}
	probetest.RecoverySteps(t, p, env, "ClockUnsynchronized", "", func() { synced = true })
}

func TestClockTimedatedUnavailableFallsBackToAdjtimex(t *testing.T) {
	env := probetest.NewTree(t).Env()
	synced, err, status, adjErr, calls := true, error(errTimedateUnknown), int32(unix.STA_UNSYNC|unix.STA_PLL), error(nil), 0
	p := timedatedProbe(t, env, &synced, &err, &status, &adjErr, &calls)
	probetest.WantOne(t, probetest.Check(t, p, env), finding.KernelReady, "ClockUnsynchronized", "", clockMessage)
	status = unix.STA_PLL
	probetest.WantNone(t, probetest.Check(t, p, env))
	if calls != 2 {
		t.Fatalf("adjtimex called %d times, want 2", calls)
	}
}

func TestClockBothSourcesFailIsAnError(t *testing.T) {
	env := probetest.NewTree(t).Env()
	synced, err, status, adjErr, calls := false, error(errTimedateUnknown), int32(unix.STA_UNSYNC), error(unix.EPERM), 0
	res, cerr := timedatedProbe(t, env, &synced, &err, &status, &adjErr, &calls).Check(t.Context(), env)
	if cerr == nil || len(res) != 0 {
		t.Fatalf("want an error and no result, got %v, %+v", cerr, res)
	}
	var dbusErr godbus.Error
	if !errors.Is(cerr, unix.EPERM) || !errors.As(cerr, &dbusErr) || dbusErr.Name != errTimedateUnknown.Name {
		t.Fatalf("want both causes wrapped, got %v", cerr)
	}
	if msg := cerr.Error(); !strings.HasPrefix(msg, "timedate1: ") || !strings.Contains(msg, "; adjtimex: ") {
		t.Fatalf("want the error to name both sources, got %q", msg)
	}
}

func TestClockCancelledCheckDoesNotFallBack(t *testing.T) {
	env := probetest.NewTree(t).Env()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	synced, err, status, adjErr, calls := false, error(context.Canceled), int32(0), error(nil), 0
	res, cerr := timedatedProbe(t, env, &synced, &err, &status, &adjErr, &calls).Check(ctx, env)
	if !errors.Is(cerr, context.Canceled) || len(res) != 0 || calls != 0 {
		t.Fatalf("want the cancellation, no result and no adjtimex; got %v, %+v, %d calls", cerr, res, calls)
	}
}

// TestClockNoBusFallsBack runs the real timedate1 reader against a fixture
// tree without a system bus socket.
func TestClockNoBusFallsBack(t *testing.T) {
	env := probetest.NewTree(t).Env()
	status, adjErr := int32(unix.STA_UNSYNC), error(unix.EPERM)
	_, cerr := clockProbe(t, env, &status, &adjErr).Check(t.Context(), env)
	if cerr == nil || !errors.Is(cerr, fs.ErrNotExist) || !errors.Is(cerr, unix.EPERM) ||
		!strings.Contains(cerr.Error(), "no system bus") {
		t.Fatalf("want no-bus and adjtimex errors, got %v", cerr)
	}
}

// TestClockOverRealDBus reads NTPSynchronized through the real D-Bus
// client from a private dbus-daemon at <root>/run/dbus/system_bus_socket,
// with a stand-in for systemd-timedated exported from this process.
func TestClockOverRealDBus(t *testing.T) {
	ft := probetest.NewTree(t)
	sock := probetest.SystemBus(t, ft.Root)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	env := ft.Env()
	p := probetest.Build(t, env, "clock-sync", "").(*clockSyncProbe) // the real timedate1 reader
	status, adjErr, calls := int32(unix.STA_UNSYNC), error(nil), 0
	adj := fakeAdjtimex(t, &status, &adjErr)
	p.adjtimex = func(tx *unix.Timex) (int, error) { calls++; return adj(tx) }
	check := func() []probe.Result {
		t.Helper()
		res, err := p.Check(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	// Nobody owns org.freedesktop.timedate1 yet: the bus answers
	// ServiceUnknown and the probe falls back to adjtimex.
	probetest.WantOne(t, check(), finding.KernelReady, "ClockUnsynchronized", "", clockMessage)
	if calls != 1 {
		t.Fatalf("adjtimex called %d times, want 1", calls)
	}

	conn := probetest.OwnBusName(t, ctx, sock, "org.freedesktop.timedate1")
	props, err := prop.Export(conn, "/org/freedesktop/timedate1", prop.Map{
		"org.freedesktop.timedate1": {
			"NTPSynchronized": {Value: false, Writable: true, Emit: prop.EmitFalse},
			"Timezone":        {Value: "UTC", Emit: prop.EmitFalse},
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	status = 0 // adjtimex would now say synced: the answer must come from timedated
	probetest.WantOne(t, check(), finding.KernelReady, "ClockUnsynchronized", "", clockTimedatedMessage)
	props.SetMust("org.freedesktop.timedate1", "NTPSynchronized", true)
	status = unix.STA_UNSYNC
	probetest.WantNone(t, check())
	if calls != 1 {
		t.Fatalf("adjtimex called %d times, want only the one before timedated was on the bus", calls)
	}
}
