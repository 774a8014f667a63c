package capture

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ioprio_set(2) values: the idle class gets disk time only when no other
// process asks for it.
const (
	ioprioWhoPgrp   = 2
	ioprioClassIdle = 3
	ioprioClassShft = 13
)

// lowerPriority gives the child's whole process group (pid leads it)
// nice 19 and the idle I/O class. Both calls act on every thread of the
// group; threads and processes started later inherit the values. The
// systemd unit allows exactly these two calls (docs/systemd.md).
func lowerPriority(pid int) error {
	var errs []error
	if err := unix.Setpriority(unix.PRIO_PGRP, pid, 19); err != nil {
		errs = append(errs, fmt.Errorf("setpriority: %w", err))
	}
	if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoPgrp, uintptr(pid), ioprioClassIdle<<ioprioClassShft); e != 0 {
		errs = append(errs, fmt.Errorf("ioprio_set: %w", e))
	}
	if err := errors.Join(errs...); err != nil {
		priorityFailures.Inc()
		return err
	}
	return nil
}
