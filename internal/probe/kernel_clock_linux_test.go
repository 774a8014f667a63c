package probe

import (
	"errors"
	"testing"

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

func clockProbe(t *testing.T, env *Env, status *int32, err *error) Probe {
	p := buildProbe(t, env, "clock-sync", "").(*clockSyncProbe)
	p.adjtimex = fakeAdjtimex(t, status, err)
	return p
}

const clockMessage = "The kernel clock is not synchronized to any time source (STA_UNSYNC); time drift may break time-sensitive workloads"

func TestClockUnsynchronizedFires(t *testing.T) {
	env := newFxTree(t).env()
	status, err := int32(unix.STA_UNSYNC|unix.STA_PLL), error(nil)
	res := mustCheck(t, clockProbe(t, env, &status, &err), env)
	wantOne(t, res, finding.KernelReady, "ClockUnsynchronized", "", clockMessage)
}

func TestClockSynchronizedQuiet(t *testing.T) {
	env := newFxTree(t).env()
	status, err := int32(unix.STA_PLL), error(nil)
	wantNone(t, mustCheck(t, clockProbe(t, env, &status, &err), env))
}

func TestClockSyscallFailureIsNotAFinding(t *testing.T) {
	env := newFxTree(t).env()
	status, err := int32(unix.STA_UNSYNC), error(unix.EPERM)
	res, cerr := clockProbe(t, env, &status, &err).Check(t.Context(), env)
	if !errors.Is(cerr, unix.EPERM) || len(res) != 0 {
		t.Fatalf("want the syscall error and no result, got %v, %+v", cerr, res)
	}
}

func TestClockRecovers(t *testing.T) {
	env := newFxTree(t).env()
	status, err := int32(unix.STA_UNSYNC), error(nil)
	p := clockProbe(t, env, &status, &err)
	recoverySteps(t, p, env, "ClockUnsynchronized", "", func() { status = 0 })
}

func TestClockRealSyscall(t *testing.T) {
	// The real adjtimex must at least be callable read-only here.
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err != nil {
		t.Skipf("adjtimex unavailable in this sandbox: %v", err)
	}
	env := newFxTree(t).env()
	if _, err := buildProbe(t, env, "clock-sync", "").Check(t.Context(), env); err != nil {
		t.Fatal(err)
	}
}
