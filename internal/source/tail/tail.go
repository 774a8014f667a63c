// Package tail follows plain log files (the ipamd log, /var/log/messages,
// cron.log, kube-proxy pod logs) and hands their complete lines to the rule
// engine as records of kind "file", one batch source "file:<path>" per file.
//
// Where a file is picked up:
//
//   - With a saved position for the same inode (and an offset the file still
//     reaches) reading continues at that offset, so a restart neither repeats
//     nor skips a line.
//   - With a saved position for another inode, or an offset past the end, the
//     file was rotated or truncated while the daemon was down; it is read from
//     its beginning. Lines appended to the old file after the saved offset are
//     lost: the rotated copy is not looked for.
//   - Without a saved position, a file created after Config.NewFilesFromStart
//     (the daemon's first start on this node) is read from its beginning: it
//     appeared while the daemon was installed, so nothing in it has been seen.
//     An older file starts at its end, because replaying history from before
//     the daemon was installed would raise conditions for long-fixed
//     problems. Creation is the statx birth time; where the filesystem does
//     not record one, the modification time stands in, which errs towards
//     reading a recently written file from its beginning.
//
// Only lines ending in '\n' are delivered while a file is followed; when it is
// left (renamed away, deleted, no longer matched) a last line without newline
// is delivered too, since nothing will complete it.
//
// While running, rename rotation (the path now names another inode) is handled
// by reading the old file to its end before opening the new one at offset 0;
// copy-truncate rotation (the file shrank below the read offset) restarts at
// 0. Whatever was appended between the last read and the truncation cannot be
// measured, so Batch.Lost stays 0. A truncation followed by writes that regrow
// the file past the old offset before the next poll cannot be told from
// appends and is missed, as is a file replaced while the daemon was down by
// one that reuses the inode and is at least as long.
//
// The offset a file starts at is sent at once as a batch without records, so
// that a restart resumes there rather than judging the file new or old again.
//
// Files are polled rather than watched: a few stat calls per interval are
// simpler to get right than inotify across rotation, vanishing directories
// and a host root mounted into a container.
package tail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

// Defaults for the zero fields of Config.
const (
	DefaultPollInterval   = 250 * time.Millisecond
	DefaultRescanInterval = 10 * time.Second
	DefaultMaxBatch       = 1024
	DefaultMaxLineBytes   = 64 << 10
)

const (
	chunkSize = 64 << 10
	// readBudget bounds what one poll reads from one file, so that replaying
	// a large file does not delay the others.
	readBudget = 4 << 20
)

// Config says which files to follow and how.
type Config struct {
	// Root is the host root prefix; "" or "/" reads the running system.
	Root string
	// Paths are absolute paths or filepath.Glob patterns, as written in the
	// rules and without Root. A plain path that does not exist is waited for.
	Paths []string
	// PollInterval is how often files are checked for new data.
	PollInterval time.Duration
	// RescanInterval is how often patterns are expanded again.
	RescanInterval time.Duration
	// NewFilesFromStart is the daemon's first start on this node: files
	// without a saved position that were created after it are read from
	// their beginning, older ones from their end. The zero time reads every
	// file from its beginning.
	NewFilesFromStart time.Time
	// MaxBatch is the most records in one batch.
	MaxBatch int
	// MaxLineBytes is the longest message; the rest of a longer line is
	// dropped.
	MaxLineBytes int
	// Log receives problems that do not stop the source (unreadable files);
	// nil discards them.
	Log *slog.Logger
}

// Source follows the files of a Config. It implements source.Source.
type Source struct {
	cfg Config
}

var _ source.Source = (*Source)(nil)

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Source, error) {
	for _, p := range cfg.Paths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("tail: path %q is not absolute", p)
		}
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, fmt.Errorf("tail: path %q: %w", p, err)
		}
	}
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.RescanInterval <= 0 {
		cfg.RescanInterval = DefaultRescanInterval
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxLineBytes <= 0 {
		cfg.MaxLineBytes = DefaultMaxLineBytes
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg}, nil
}

// Name implements source.Source.
func (s *Source) Name() string { return string(source.KindFile) }

// Run implements source.Source. It returns an error wrapping
// source.ErrUnavailable when no paths are configured.
func (s *Source) Run(ctx context.Context, start map[string]source.Position, out chan<- source.Batch) error {
	if len(s.cfg.Paths) == 0 {
		return fmt.Errorf("tail: no files configured: %w", source.ErrUnavailable)
	}
	r := &runner{
		cfg:   s.cfg,
		start: maps.Clone(start),
		out:   out,
		files: map[string]*follower{},
		buf:   make([]byte, chunkSize),
	}
	if r.start == nil {
		r.start = map[string]source.Position{}
	}
	defer r.closeAll()

	var lastScan time.Time
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wait.C:
		}
		if time.Since(lastScan) >= r.cfg.RescanInterval {
			r.scan()
			lastScan = time.Now()
		}
		more, err := r.pollAll(ctx)
		if err != nil {
			return nil // only ctx ends a poll early
		}
		next := r.cfg.PollInterval
		if more {
			next = 0
		}
		wait.Reset(next)
	}
}

// runner is the state of one Run.
type runner struct {
	cfg   Config
	start map[string]source.Position
	out   chan<- source.Batch
	files map[string]*follower // by path without root
	buf   []byte
}

// follower is one concrete path and, while it exists, its open file.
type follower struct {
	path string // without root
	name string // batch source name
	glob bool   // found by a pattern; dropped once the pattern stops matching
	gone bool   // pattern no longer matches; drain and drop

	f      *os.File
	ino    uint64
	off    int64 // after the last delivered line: what Position stores
	rpos   int64 // how far the file has been read; the partial line lies between off and rpos
	line   []byte
	cut    bool // line reached MaxLineBytes; the rest up to '\n' is dropped
	opened bool // a file has been open at this path during this run
	sent   source.Position
	errMsg string // last logged problem, so a persistent one is logged once
	// retryOpen delays the next open of a missing file: most nodes lack
	// most of the files the rules name, and an idle daemon should not try
	// them at every poll.
	retryOpen time.Time
}

// missingRetry bounds how often a missing file is looked for: every 8
// polls, at most every 2 seconds.
func (r *runner) missingRetry() time.Duration { return min(8*r.cfg.PollInterval, 2*time.Second) }

// scan expands the patterns and adds or retires followers to match.
func (r *runner) scan() {
	want := map[string]bool{}
	for _, p := range r.cfg.Paths {
		if !strings.ContainsAny(p, "*?[") {
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
		r.files[p] = &follower{path: p, name: name, glob: glob, sent: r.start[name]}
	}
	for p, fl := range r.files {
		if _, ok := want[p]; !ok && fl.glob {
			fl.gone = true
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

// pollAll polls every file once. more reports that some file has data left
// beyond this poll's budget.
func (r *runner) pollAll(ctx context.Context) (more bool, err error) {
	for p, fl := range r.files {
		m, err := r.poll(ctx, fl)
		if err != nil {
			return false, err
		}
		more = more || m
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
	return more, nil
}

// poll delivers the complete lines fl's file holds now and follows rotation.
func (r *runner) poll(ctx context.Context, fl *follower) (more bool, err error) {
	if fl.f == nil {
		now := time.Now()
		if now.Before(fl.retryOpen) {
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

	// At EOF: look for copy-truncate, then for a replaced or deleted path.
	if fi, err := fl.f.Stat(); err == nil && fi.Size() < fl.rpos {
		fl.off, fl.rpos, fl.line, fl.cut = 0, 0, fl.line[:0], false
		return true, r.send(ctx, fl, nil)
	}
	fi, statErr := os.Stat(host.Path(r.cfg.Root, fl.path))
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
	f, err := os.Open(host.Path(r.cfg.Root, fl.path))
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
	fl.line, fl.cut, fl.opened = fl.line[:0], false, true
	if (source.Position{Inode: ino, Offset: off}) != fl.sent {
		// Store where this file starts, so a restart resumes here instead
		// of applying the start rule again to a file that is no longer new.
		return true, r.send(ctx, fl, nil)
	}
	return true, nil
}

// read reads and delivers complete lines until EOF or, when budget is not
// negative, about budget bytes. more reports that the budget ran out first.
func (r *runner) read(ctx context.Context, fl *follower, budget int) (more bool, err error) {
	var recs []source.Record
	limited := budget >= 0
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if limited && budget <= 0 {
			return true, r.send(ctx, fl, recs)
		}
		n, rerr := fl.f.ReadAt(r.buf, fl.rpos)
		budget -= n
		now := time.Now()
		data := r.buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				fl.appendLine(data, r.cfg.MaxLineBytes)
				fl.rpos += int64(len(data))
				break
			}
			fl.appendLine(data[:i], r.cfg.MaxLineBytes)
			fl.rpos += int64(i + 1)
			fl.off = fl.rpos
			recs = append(recs, fl.record(now))
			data = data[i+1:]
			if len(recs) == r.cfg.MaxBatch {
				if err := r.send(ctx, fl, recs); err != nil {
					return false, err
				}
				recs = nil
			}
		}
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
	return r.send(ctx, fl, []source.Record{fl.record(time.Now())})
}

func (fl *follower) appendLine(b []byte, max int) {
	if room := max - len(fl.line); len(b) > room {
		b, fl.cut = b[:room], true
	}
	fl.line = append(fl.line, b...)
}

// record takes the line collected so far.
func (fl *follower) record(now time.Time) source.Record {
	msg := fl.line
	if !fl.cut {
		msg = bytes.TrimSuffix(msg, []byte("\r"))
	}
	rec := source.Record{
		Kind:     source.KindFile,
		Message:  string(msg),
		Time:     now,
		Path:     fl.path,
		Priority: -1,
		Facility: -1,
	}
	fl.line, fl.cut = fl.line[:0], false
	return rec
}

// send hands recs (possibly none, to move the position only) to the engine.
// Empty sends that would not move the position are skipped.
func (r *runner) send(ctx context.Context, fl *follower, recs []source.Record) error {
	pos := source.Position{Inode: fl.ino, Offset: fl.off}
	if len(recs) == 0 && pos == fl.sent {
		return nil
	}
	select {
	case r.out <- source.Batch{Source: fl.name, Records: recs, Position: pos}:
		fl.sent = pos
		return nil
	case <-ctx.Done():
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
}
