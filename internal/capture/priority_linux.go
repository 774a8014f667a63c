package capture

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// ioprio_set(2) values: the idle class gets disk time only when no other
// process asks for it.
const (
	ioprioWhoProcess = 1
	ioprioClassIdle  = 3
	ioprioClassShft  = 13
)

// lowerThread gives the calling OS thread nice 19 and the idle I/O class.
// Both are per thread in Linux, and a process forked from the thread
// inherits them. The systemd unit allows exactly these two calls
// (docs/systemd.md).
func lowerThread() error {
	tid := unix.Gettid()
	var errs []error
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, 19); err != nil {
		errs = append(errs, fmt.Errorf("setpriority: %w", err))
	}
	if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), ioprioClassIdle<<ioprioClassShft); e != 0 {
		errs = append(errs, fmt.Errorf("ioprio_set: %w", e))
	}
	if err := errors.Join(errs...); err != nil {
		priorityFailures.Inc()
		return err
	}
	return nil
}

// startLowered starts cmd from an OS thread that lower has lowered, so
// that the child runs at that priority from its first instruction, and so
// does everything it starts. Lowering the child's process group after
// Start raced with the child's first forks: a command forked in that
// window kept the daemon's priority.
//
// The goroutine ends with its thread still locked, so the runtime ends
// the thread too rather than hand a lowered thread back to the daemon.
// The runtime creates no thread by cloning a locked one, so nothing else
// inherits the priority either.
func startLowered(cmd *exec.Cmd, lower func() error) (lowerErr, startErr error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		lowerErr = lower()
		startErr = cmd.Start()
	}()
	<-done
	return lowerErr, startErr
}
