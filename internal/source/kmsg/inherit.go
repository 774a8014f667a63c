package kmsg

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// kmsgMajor and kmsgMinor are /dev/kmsg's device number (devices.txt: 1, 11).
const (
	kmsgMajor = 1
	kmsgMinor = 11
)

// Device is a /dev/kmsg opened by someone else (systemd). All readers share
// one open file description and so one read position: they take turns.
type Device struct {
	f *os.File
	// mu is held by the Run reading the device. A Run cancelled by a
	// reload may still be in a read when the next one starts; the next one
	// waits instead of having records taken from under it.
	mu sync.Mutex
}

// Inherited returns standard input when it is /dev/kmsg, as the systemd
// unit arranges with StandardInput=file:/dev/kmsg, and nil otherwise (a
// terminal, /dev/null, a pipe). The result is meant for Config.Device.
func Inherited() *Device {
	var st unix.Stat_t
	if err := unix.Fstat(0, &st); err != nil {
		return nil
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(uint64(st.Rdev)) != kmsgMajor || unix.Minor(uint64(st.Rdev)) != kmsgMinor {
		return nil
	}
	return &Device{f: os.NewFile(0, "/dev/kmsg (standard input)")}
}

// Name describes the device for logs.
func (d *Device) Name() string { return d.f.Name() }

// reopen returns a non-blocking duplicate of the open device, moved to the
// oldest record in the ring (a fresh open would start there too). The
// caller holds d.mu.
func (d *Device) reopen() (*os.File, error) {
	fd, err := unix.FcntlInt(d.f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	if _, err := unix.Seek(fd, 0, unix.SEEK_SET); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("seek to the oldest record: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), d.f.Name()), nil
}
