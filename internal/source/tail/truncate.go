package tail

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/source"
)

const (
	// fingerprintBytes is how much of what was read last is kept and read
	// again before reading on: enough that two log lines written at
	// different times differ in it.
	fingerprintBytes = 64
	// maxCopyCandidates bounds the files looked at for a rotated copy, the
	// newest first, in a directory that keeps many old rotations.
	maxCopyCandidates = 16
)

// rewritten handles fl's file having been truncated or rewritten since it
// was read up to rpos. Copy-truncate rotation (logrotate's copytruncate)
// copies the file next to it and then truncates it, while its writer goes
// on appending; lines appended after the last read are in the copy. So the
// copy is looked for and read from rpos to its end; without one, what the
// file was known to hold beyond the last complete line is counted as lost
// lines (see lostLines). The file is then read again from its beginning.
func (r *runner) rewritten(ctx context.Context, fl *follower) error {
	at := fl.rpos
	end := fl.off // what is delivered: the partial line is lost without a copy
	copyName := ""
	if c, name := r.findCopy(fl); c != nil {
		live, ino := fl.f, fl.ino
		// Batches carry the copy's inode, so that a restart meanwhile does
		// not apply their offsets to the live file.
		fl.f, fl.ino, fl.inCopy = c, fileInode(c), true
		_, err := r.read(ctx, fl, -1)
		if err == nil {
			// Nothing will complete a last line without newline.
			err = r.flushPartial(ctx, fl)
		}
		c.Close()
		fl.f, fl.ino, fl.inCopy = live, ino, false
		if err != nil {
			return err
		}
		end, copyName = fl.rpos, name
	}
	lost := fl.lostLines(fl.seen - end)
	fl.lost += lost
	fl.off, fl.rpos, fl.seen, fl.line, fl.fp = 0, 0, 0, source.Line{}, fl.fp[:0]
	switch {
	case copyName != "":
		r.cfg.Log.Info("file truncated; read its last lines from the rotated copy", "path", fl.path, "copy", copyName, "offset", at, "lost", lost)
	case lost > 0:
		// The pipeline warns about the lost lines.
		r.cfg.Log.Info("file truncated, and no rotated copy holds its last lines", "path", fl.path, "offset", at, "lost", lost)
	default:
		r.cfg.Log.Warn("file truncated, and no rotated copy holds its last lines; lines written after the last read, if any, are lost uncounted", "path", fl.path, "offset", at)
	}
	return r.send(ctx, fl, nil)
}

// lostLines estimates how many lines n bytes held: n divided by the average
// length of the lines read from this path, rounded, and at least 1. The
// bytes themselves are gone.
func (fl *follower) lostLines(n int64) uint64 {
	if n <= 0 {
		return 0
	}
	if fl.readLines == 0 {
		return 1
	}
	avg := max(1, fl.readBytes/fl.readLines)
	return uint64(max(1, (n+avg/2)/avg))
}

// findCopy looks next to fl's file for the copy that copy-truncate rotation
// made of it: a regular file whose name starts like the file's (logrotate
// names it name.1, name-20260301, or with its extension option
// name-20260301.log), at least rpos long and holding fl.fp just before rpos.
// The newest candidates are tried first. A compressed copy does not match.
func (r *runner) findCopy(fl *follower) (*os.File, string) {
	if len(fl.fp) == 0 {
		return nil, ""
	}
	file := fl.host
	if fl.real != "" {
		file = fl.real
	}
	dir, base := filepath.Split(file)
	prefix := strings.TrimSuffix(base, filepath.Ext(base))
	if prefix == "" {
		prefix = base
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, ""
	}
	type candidate struct {
		name string
		mod  time.Time
	}
	var cands []candidate
	for _, e := range entries {
		if e.Name() == base || !strings.HasPrefix(e.Name(), prefix) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Size() < fl.rpos || inode(fi) == fl.ino {
			continue
		}
		cands = append(cands, candidate{e.Name(), fi.ModTime()})
	}
	slices.SortFunc(cands, func(a, b candidate) int { return b.mod.Compare(a.mod) })
	want := make([]byte, len(fl.fp))
	for _, c := range cands[:min(len(cands), maxCopyCandidates)] {
		f, err := os.Open(filepath.Join(dir, c.name))
		if err != nil {
			continue
		}
		if n, _ := f.ReadAt(want, fl.rpos-int64(len(want))); n == len(want) && bytes.Equal(want, fl.fp) {
			return f, c.name
		}
		f.Close()
	}
	return nil, ""
}

// fileInode is the inode of an open file, 0 if it cannot be told.
func fileInode(f *os.File) uint64 {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	return inode(fi)
}
