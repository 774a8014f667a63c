package journal

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>

typedef struct {
	int (*get_fd)(void *j);
	int (*process)(void *j);
	int (*get_timeout)(void *j, uint64_t *usec);
} nh_wait_api;

static int nh_wait_load(nh_wait_api *api) {
	void *h = dlopen("libsystemd.so.0", RTLD_LAZY);
	if (!h)
		return -1;
	api->get_fd = dlsym(h, "sd_journal_get_fd");
	api->process = dlsym(h, "sd_journal_process");
	api->get_timeout = dlsym(h, "sd_journal_get_timeout");
	return api->get_fd && api->process && api->get_timeout ? 0 : -1;
}

static int nh_get_fd(const nh_wait_api *api, void *j) { return api->get_fd(j); }
static int nh_process(const nh_wait_api *api, void *j) { return api->process(j); }
static int nh_get_timeout(const nh_wait_api *api, void *j, uint64_t *usec) { return api->get_timeout(j, usec); }
*/
import "C"

import (
	"context"
	"math"
	"os"
	"syscall"
	"time"
	"unsafe"

	"github.com/coreos/go-systemd/v22/sdjournal"
	"golang.org/x/sys/unix"
)

// fdWaiter waits for the journal to change on sd-journal's own inotify
// descriptor, through Go's poller: an idle journal costs no wake-ups and no
// thread. sd_journal_wait cannot be interrupted, so waiting with it means
// slices of maxWaitSlice: five wake-ups a second, each a thread going in
// and out of C, on every node for as long as the daemon runs.
type fdWaiter struct {
	api C.nh_wait_api
	j   unsafe.Pointer
	// f is a duplicate of sd-journal's descriptor: closing it leaves
	// sd-journal's alone, and the two share the inotify queue.
	f  *os.File
	rc syscall.RawConn
}

// useFDWait lets tests compare both ways of waiting.
var useFDWait = true

// newFDWaiter returns nil when the descriptor cannot be had (the handle or
// the functions not found, no inotify); the reader then uses
// sd_journal_wait.
func newFDWaiter(j *sdjournal.Journal) *fdWaiter {
	h := handle(j)
	if !useFDWait || h == nil {
		return nil
	}
	w := &fdWaiter{j: h}
	if C.nh_wait_load(&w.api) != 0 {
		return nil
	}
	fd := C.nh_get_fd(&w.api, h)
	if fd < 0 {
		return nil
	}
	// sd_journal_get_fd(3): sd_journal_process must follow.
	C.nh_process(&w.api, h)
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	// The descriptor is non-blocking (sd-journal opens inotify so), which
	// puts it in Go's poller.
	w.f = os.NewFile(uintptr(dup), "sd-journal")
	if w.rc, err = w.f.SyscallConn(); err != nil {
		w.f.Close()
		return nil
	}
	return w
}

// wait returns when the journal may have changed, after at most max (or
// the earlier time sd-journal asks to be called again, for files it cannot
// watch), or when ctx ends. Like sd_journal_wait it then lets sd-journal
// process the changes, so that Next sees new entries and files.
func (w *fdWaiter) wait(ctx context.Context, max time.Duration) {
	var usec C.uint64_t
	if C.nh_get_timeout(&w.api, w.j, &usec) >= 0 && uint64(usec) != math.MaxUint64 {
		var now unix.Timespec
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &now) == nil {
			at := time.Duration(uint64(usec)) * time.Microsecond
			max = min(max, at-time.Duration(now.Nano()))
		}
	}
	if max > 0 && ctx.Err() == nil {
		_ = w.f.SetReadDeadline(time.Now().Add(max))
		stop := context.AfterFunc(ctx, func() { _ = w.f.SetReadDeadline(time.Now()) })
		woken := false
		// Events already queued end the wait at once: Go's poller forgets
		// a readiness it reported while nobody waited (RawConn.Read resets
		// it before the first call), so it must not be relied on for them.
		// Otherwise the first call asks to wait for the descriptor to be
		// readable. sd-journal reads the events itself.
		_ = w.rc.Read(func(fd uintptr) bool {
			// TIOCINQ is FIONREAD: the bytes of events queued.
			if n, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ); err == nil && n > 0 {
				return true
			}
			done := woken
			woken = true
			return done
		})
		stop()
	}
	C.nh_process(&w.api, w.j)
}

func (w *fdWaiter) close() { w.f.Close() }
