package tail

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

// runner is the state of one Run.
type runner struct {
	cfg   Config
	start map[string]source.Position
	out   chan<- source.Batch
	files map[string]*follower // by path without root
	buf   []byte
	// fill is the memory of the batch being filled (batch.go).
	fill *batch

	w *fsnotify.Watcher // nil: polling only
	// unwatched holds directories that should be watched but could not be,
	// with the error last logged for each; while there are any, changes in
	// them are found by polling at FallbackPollInterval.
	unwatched map[string]string
	dirty     bool // some follower is dirty
	rescan    bool // an event may have changed which files or directories exist
}

// follower is one concrete path and, while it exists, its open file.
type follower struct {
	path string // without root
	host string // path with root, cleaned as inotify names it
	real string // where path leads when it is a symbolic link, else ""
	name string // batch source name
	glob bool   // found by a pattern; dropped once the pattern stops matching
	gone bool   // pattern no longer matches; drain and drop

	f      *os.File
	ino    uint64
	off    int64       // after the last delivered line: what Position stores
	rpos   int64       // how far the file has been read; the partial line lies between off and rpos
	line   source.Line // collects the partial line
	opened bool        // a file has been open at this path during this run
	// truncated counts lines cut to source.MaxMessageBytes since the last
	// batch; longWarned says the log has been told for this file.
	truncated  uint64
	longWarned bool
	// fp holds the bytes just before rpos, at most fingerprintBytes of
	// them, to tell appends from a file truncated or rewritten under us.
	fp []byte
	// seen is how far the file is known to reach: what lies between rpos
	// and seen is lost if the file is truncated before it is read.
	seen int64
	// lost counts lines lost since the last batch.
	lost uint64
	// readLines and readBytes add up the lines delivered from this path in
	// this run, for the average line length that estimates lost lines.
	readLines, readBytes int64
	// inCopy says f is the rotated copy of the file, being read to its end.
	inCopy bool
	sent   source.Position
	errMsg string // last logged problem, so a persistent one is logged once
	// retryOpen delays the next open of a missing file when polling
	// without events: most nodes lack most of the files the rules name,
	// and an idle daemon should not try them at every poll.
	retryOpen time.Time
	// dirty says an event named the file (or may have): poll it at the
	// next read, even if it is missing and its retry is not due.
	dirty bool
}

// missingRetry bounds how often a missing file is looked for: every 8
// polls, at most every 2 seconds. With events working, polls are slower than
// that and every one looks.
func (r *runner) missingRetry() time.Duration { return min(8*r.interval(), 2*time.Second) }

// interval is the time between polls of every file.
func (r *runner) interval() time.Duration {
	if r.w == nil || len(r.unwatched) > 0 {
		return min(r.cfg.PollInterval, r.cfg.fallbackPoll)
	}
	return r.cfg.PollInterval
}

// pending reports that events asked for work that has not been done.
func (r *runner) pending() bool { return r.dirty || r.rescan }

// scan expands the patterns and adds or retires followers to match.
func (r *runner) scan() {
	want := map[string]bool{}
	for _, p := range r.cfg.Paths {
		if !isPattern(p) {
			want[p] = false
			continue
		}
		matches, _ := filepath.Glob(host.Path(r.cfg.Root, p)) // pattern checked in New
		for _, m := range matches {
			m = r.unroot(m)
			if _, seen := want[m]; !seen {
				want[m] = true
			}
		}
	}
	for p, glob := range want {
		if fl := r.files[p]; fl != nil {
			fl.gone = false
			continue
		}
		name := "file:" + p
		r.files[p] = &follower{path: p, host: filepath.Clean(host.Path(r.cfg.Root, p)), name: name, glob: glob, sent: r.start[name], dirty: true}
		r.dirty = true
	}
	for p, fl := range r.files {
		if _, ok := want[p]; !ok && fl.glob && !fl.gone {
			fl.gone, fl.dirty, r.dirty = true, true, true
		}
	}
}

// unroot turns a path found under Root back into the path the rules name.
func (r *runner) unroot(p string) string {
	if r.cfg.Root == "/" {
		return p
	}
	rel, err := filepath.Rel(r.cfg.Root, p)
	if err != nil {
		return p
	}
	return "/" + rel
}

// pollFiles polls the dirty files, or with all every file, once. more
// reports that some file has data left beyond this poll's budget (it stays
// dirty).
func (r *runner) pollFiles(ctx context.Context, all bool) (more bool, err error) {
	for p, fl := range r.files {
		if !all && !fl.dirty {
			continue
		}
		force := fl.dirty
		fl.dirty = false
		m, err := r.poll(ctx, fl, force)
		if err != nil {
			return false, err
		}
		if m {
			fl.dirty, more = true, true
		}
		if fl.gone {
			// The file was deleted or renamed out of the pattern; what it
			// held up to now has just been read.
			if err := r.flushPartial(ctx, fl); err != nil {
				return false, err
			}
			fl.close()
			delete(r.files, p)
			// A later file at this path is new, not the one the saved
			// position describes.
			delete(r.start, fl.name)
		}
	}
	r.dirty = more
	return more, nil
}

// poll delivers the complete lines fl's file holds now and follows rotation.
// force looks for a missing file even before its retry is due.
func (r *runner) poll(ctx context.Context, fl *follower, force bool) (more bool, err error) {
	if fl.f == nil {
		now := time.Now()
		if !force && now.Before(fl.retryOpen) {
			return false, nil
		}
		ok, err := r.open(ctx, fl)
		if !ok || err != nil {
			fl.retryOpen = now.Add(r.missingRetry())
			return false, err
		}
	}
	if more, err := r.read(ctx, fl, readBudget); more || err != nil {
		return more, err
	}

	// At EOF: look for a replaced or deleted path. (read itself notices
	// a truncated file.)
	fi, statErr := os.Stat(fl.host)
	if statErr == nil && inode(fi) == fl.ino {
		return false, nil
	}
	if statErr != nil && !errors.Is(statErr, fs.ErrNotExist) {
		// Cannot tell (e.g. a directory lost its permissions); keep the
		// file rather than reopen it later from 0 and repeat its lines.
		return false, nil
	}
	// The writer may have appended between the read above and the rename,
	// and nothing more will complete the last line.
	if _, err := r.read(ctx, fl, -1); err != nil {
		return false, err
	}
	if err := r.flushPartial(ctx, fl); err != nil {
		return false, err
	}
	fl.close()
	return statErr == nil, nil // a successor exists: open it without waiting
}

// open opens the file at fl.path, if there is one, and picks the offset to
// start at (see the package comment).
func (r *runner) open(ctx context.Context, fl *follower) (bool, error) {
	f, err := os.Open(fl.host)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		r.warn(fl, "cannot open file", err)
		return false, nil
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		f.Close()
		r.warn(fl, "cannot follow file", err)
		return false, nil
	}
	fl.errMsg = ""

	ino, size := inode(fi), fi.Size()
	saved, ok := r.start[fl.name]
	var off int64
	switch {
	case fl.opened:
		off = 0 // successor of a file this run followed
	case ok && !saved.IsZero():
		if saved.Inode == ino && saved.Offset <= size {
			off = saved.Offset
		}
	case birthTime(f, fi).After(r.cfg.NewFilesFromStart):
		off = 0
	default:
		off = size
	}
	fl.f, fl.ino, fl.off, fl.rpos = f, ino, off, off
	fl.line, fl.opened = source.Line{}, true
	fl.seen, fl.fp = 0, fl.fp[:0]
	k := min(off, fingerprintBytes)
	if n, _ := f.ReadAt(r.buf[:k], off-k); int64(n) == k {
		fl.fp = append(fl.fp, r.buf[:k]...)
	}
	r.resolve(fl)
	if (source.Position{Inode: ino, Offset: off}) != fl.sent {
		// Store where this file starts, so a restart resumes here instead
		// of applying the start rule again to a file that is no longer new.
		return true, r.send(ctx, fl, nil)
	}
	return true, nil
}

// read reads and delivers complete lines until EOF or, when budget is not
// negative, about budget bytes. more reports that the budget ran out first.
//
// Every read starts fl.fp's length before rpos, so that bytes that are no
// longer those read before tell that the file was truncated (copy-truncate
// rotation) or rewritten, even when it has already grown past rpos again.
func (r *runner) read(ctx context.Context, fl *follower, budget int) (more bool, err error) {
	var recs []source.Record
	limited := budget >= 0
	// The size is what the file is known to hold only if the bytes before
	// rpos are still those read before it: checked by the first read.
	size := int64(-1)
	if fi, err := fl.f.Stat(); err == nil {
		size = fi.Size()
	}
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if limited && budget <= 0 {
			return true, r.send(ctx, fl, recs)
		}
		k := len(fl.fp)
		n, rerr := fl.f.ReadAt(r.buf, fl.rpos-int64(k))
		if n < k && rerr != nil && rerr != io.EOF {
			r.warn(fl, "cannot read file", rerr)
			return false, r.send(ctx, fl, recs)
		}
		if n < k || !bytes.Equal(r.buf[:k], fl.fp) {
			if fl.inCopy {
				// The rotated copy changed under us: stop reading it.
				return false, r.send(ctx, fl, recs)
			}
			if err := r.send(ctx, fl, recs); err != nil {
				return false, err
			}
			recs = nil
			if err := r.rewritten(ctx, fl); err != nil {
				return false, err
			}
			size = -1
			continue
		}
		fl.seen = max(fl.seen, size, fl.rpos+int64(n-k))
		size = -1
		budget -= n - k
		now := time.Now()
		data := r.buf[k:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				fl.line.Add(data)
				fl.rpos += int64(len(data))
				break
			}
			fl.rpos += int64(i + 1)
			fl.readLines++
			fl.readBytes += fl.rpos - fl.off
			fl.off = fl.rpos
			recs = r.appendRecord(recs, fl, data[:i], now)
			data = data[i+1:]
			if len(recs) == r.cfg.MaxBatch {
				if err := r.send(ctx, fl, recs); err != nil {
					return false, err
				}
				recs = nil
			}
		}
		fl.fp = append(fl.fp[:0], r.buf[max(0, n-fingerprintBytes):n]...)
		if rerr != nil {
			if rerr != io.EOF {
				r.warn(fl, "cannot read file", rerr)
			}
			return false, r.send(ctx, fl, recs)
		}
	}
}

// flushPartial delivers a last line that will never get its newline because
// the file is being left.
func (r *runner) flushPartial(ctx context.Context, fl *follower) error {
	if fl.f == nil || fl.rpos == fl.off {
		return nil
	}
	fl.off = fl.rpos
	return r.send(ctx, fl, r.appendRecord(nil, fl, nil, time.Now()))
}

// record ends the line collected so far with its last piece, keeping its
// message in text.
func (r *runner) record(fl *follower, last []byte, text *source.Text, now time.Time) source.Record {
	b, cut := fl.line.EndBytes(last)
	msg := text.String(b)
	if cut {
		fl.truncated++
		if !fl.longWarned {
			fl.longWarned = true
			r.cfg.Log.Warn("line too long; the rules see its beginning only", "path", fl.path, "limit_bytes", source.MaxMessageBytes)
		}
	}
	return source.Record{
		Kind:     source.KindFile,
		Message:  msg,
		Time:     now,
		Path:     fl.path,
		Priority: -1,
		Facility: -1,
	}
}

// send hands recs (possibly none, to move the position only) to the engine.
// Empty sends that would not move the position are skipped. Records are in
// the memory of the batch being filled, which goes with them.
func (r *runner) send(ctx context.Context, fl *follower, recs []source.Record) error {
	pos := source.Position{Inode: fl.ino, Offset: fl.off}
	if len(recs) == 0 && pos == fl.sent && fl.lost == 0 {
		return nil
	}
	b := source.Batch{Source: fl.name, Records: recs, Position: pos, Truncated: fl.truncated, Lost: fl.lost}
	var mem *batch
	if len(recs) > 0 {
		mem, r.fill = r.fill, nil
		mem.recs = recs
		b.Recycle = mem.recycle
	}
	select {
	case r.out <- b:
		fl.sent, fl.truncated, fl.lost = pos, 0, 0
		return nil
	case <-ctx.Done():
		if mem != nil {
			mem.recycle()
		}
		return ctx.Err()
	}
}

func (r *runner) warn(fl *follower, msg string, err error) {
	if err.Error() == fl.errMsg {
		return
	}
	fl.errMsg = err.Error()
	r.cfg.Log.Warn(msg, "path", fl.path, "err", err)
}

func (fl *follower) close() {
	if fl.f != nil {
		fl.f.Close()
		fl.f = nil
	}
}

func (r *runner) closeAll() {
	for _, fl := range r.files {
		fl.close()
	}
	if r.w != nil {
		r.w.Close()
	}
}
