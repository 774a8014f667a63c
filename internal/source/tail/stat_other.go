//go:build unix && !linux

package tail

import (
	"os"
	"syscall"
	"time"
)

// birthTime falls back to the modification time: creation time is only
// read through Linux statx.
func birthTime(_ *os.File, fi os.FileInfo) time.Time { return fi.ModTime() }

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
