//go:build linux

package tail

import (
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// birthTime returns when f was created, or its modification time where the
// kernel (statx needs 4.11) or the filesystem does not record creation.
func birthTime(f *os.File, fi os.FileInfo) time.Time {
	var sx unix.Statx_t
	err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_BTIME, &sx)
	if err == nil && sx.Mask&unix.STATX_BTIME != 0 {
		return time.Unix(sx.Btime.Sec, int64(sx.Btime.Nsec))
	}
	return fi.ModTime()
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
