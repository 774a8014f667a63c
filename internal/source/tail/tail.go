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
// is delivered too, since nothing will complete it. A line longer than
// source.MaxMessageBytes is delivered cut to that many bytes, counted in
// Batch.Truncated, and said so in the log once per file and run.
//
// While running, rename rotation (the path now names another inode) is handled
// by reading the old file to its end before opening the new one at offset 0.
// Copy-truncate rotation is told from appends by the bytes just before the
// read offset: every read starts that many bytes early (fingerprintBytes),
// and a file now shorter, or holding other bytes there, was truncated or
// rewritten, even when its writer has grown it past the old offset again.
// The lines appended between the last read and the truncation are then read
// from the rotated copy: a file next to it whose name starts like its own
// (name.1, name-20260301, name-20260301.log), uncompressed, and holding the
// same bytes before the offset. Without one they are lost: what the file was
// known to hold beyond the last complete line read (its size when a read
// began, which exceeds the offset when the reader is behind) is counted in
// Batch.Lost, as lines of the average length read from the path, at least
// one; when nothing was known beyond it, nothing can be counted and the log
// says that lines written after the last read, if any, are lost. Either way
// the file is then read from its beginning. Lines written between the copy
// and the truncation are in neither file and cannot be counted. Not noticed:
// a file rewritten with the same bytes before the offset (a log of identical
// lines), and a file replaced while the daemon was down by one that reuses
// the inode and is at least as long.
//
// The offset a file starts at is sent at once as a batch without records, so
// that a restart resumes there rather than judging the file new or old again.
//
// Changes are noticed through inotify rather than by polling, because an
// idle node should cost no wake-ups: the directories that hold the files are
// watched, not the files, since a directory watch survives rotation and also
// reports a file being created. For a file whose directory does not exist
// yet, and for the fixed leading directories of a pattern, the nearest
// existing ancestor is watched; below that, every directory a pattern's
// directory part matches (each pod's log directory) is watched too. A file is
// read when an event names it; an entry created, removed or renamed anywhere
// on a configured path expands the patterns and adjusts the watches again.
// Reads that events cause are at least 100ms apart, so that a busy log is
// read in a few large pieces rather than once per write, and while one waits
// the watcher is not drained, so that the kernel folds repeated writes into
// one event. Events in quick succession that ask for nothing (a busy
// neighbour of a followed file) are left with the watcher for 100ms too.
//
// inotify misses some changes: writes on network and some overlay
// filesystems, directories it could not watch (a full watch table), a
// directory replaced between two looks. Every PollInterval each file is
// polled as if an event had named it, and every RescanInterval the patterns
// and watches are redone, whatever the events said. Where a directory cannot
// be watched, or no inotify instance is left at all, files are polled every
// FallbackPollInterval instead, as they were before events were used.
package tail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/nodehealthd/nodehealthd/internal/source"
)

// Defaults for the zero fields of Config. The poll and rescan are only the
// safety net for what inotify misses; each is a wake-up of an idle daemon.
const (
	DefaultPollInterval   = time.Minute
	DefaultRescanInterval = time.Minute
	// DefaultMaxBatch keeps a batch to about 40 KiB of records and 32 KiB
	// of text: the pipeline's queue holds a few batches, so this bounds
	// what a flood of lines makes the daemon hold, while a batch is still
	// large enough that handing it over costs little per line.
	DefaultMaxBatch = 256
)

// FallbackPollInterval is how often files are polled while changes cannot be
// watched (see the package comment), unless PollInterval is shorter. Without
// events it is the delay before a line reaches the rules.
const FallbackPollInterval = 250 * time.Millisecond

const (
	chunkSize = 64 << 10
	// readBudget bounds what one poll reads from one file, so that replaying
	// a large file does not delay the others.
	readBudget = 4 << 20
	// coalesce is the shortest time between two reads that events cause:
	// ipamd writes many lines a second, and reading after each write would
	// cost a wake-up per line. A lone write after a quiet spell is still read
	// at once.
	coalesce = 100 * time.Millisecond
)

// Config says which files to follow and how.
type Config struct {
	// Root is the host root prefix; "" or "/" reads the running system.
	Root string
	// Paths are absolute paths or filepath.Glob patterns, as written in the
	// rules and without Root. A plain path that does not exist is waited for.
	Paths []string
	// PollInterval is how often every file is checked for new data even
	// though no event named it: the safety net for what inotify misses.
	// Files are polled at least every FallbackPollInterval while changes
	// cannot be watched.
	PollInterval time.Duration
	// RescanInterval is how often patterns are expanded, and the watched
	// directories redone, without an event asking for it.
	RescanInterval time.Duration
	// NewFilesFromStart is the daemon's first start on this node: files
	// without a saved position that were created after it are read from
	// their beginning, older ones from their end. The zero time reads every
	// file from its beginning.
	NewFilesFromStart time.Time
	// MaxBatch is the most records in one batch.
	MaxBatch int
	// Log receives problems that do not stop the source (unreadable files);
	// nil discards them.
	Log *slog.Logger

	// Tests replace these to run without inotify, to fail watches, and to
	// make polling too slow to hide a missed event.
	newWatcher   func() (*fsnotify.Watcher, error)
	addWatch     func(w *fsnotify.Watcher, dir string) error
	fallbackPoll time.Duration
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
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.newWatcher == nil {
		cfg.newWatcher = fsnotify.NewWatcher
	}
	if cfg.addWatch == nil {
		cfg.addWatch = (*fsnotify.Watcher).Add
	}
	if cfg.fallbackPoll <= 0 {
		cfg.fallbackPoll = FallbackPollInterval
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

	var events <-chan fsnotify.Event
	var errs <-chan error
	if w, err := r.cfg.newWatcher(); err != nil {
		r.cfg.Log.Warn("cannot watch files for changes; polling them instead", "interval", r.interval(), "err", err)
	} else {
		r.w, events, errs = w, w.Events, w.Errors
	}

	// lastScan and lastFull move only on schedule, so that with equal
	// intervals the periodic rescan and poll share one wake-up; lastRead
	// moves with every read, for coalescing.
	var lastScan, lastFull, lastRead time.Time
	// Events are left with the watcher while a read is pending, and until
	// muteUntil once they come in quick succession: the kernel merges a
	// file's repeated writes into the event it has queued, so that a busy
	// file, or a busy neighbour in a watched directory (syslog next to
	// messages), costs a wake-up per coalescing delay, not one per write.
	var lastEvent, muteUntil time.Time
	heard := func(now time.Time) {
		if now.Sub(lastEvent) < coalesce {
			muteUntil = now.Add(coalesce)
		}
		lastEvent = now
	}
	var more bool
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		now := time.Now()
		scanDue := now.Sub(lastScan) >= r.cfg.RescanInterval
		fullDue := now.Sub(lastFull) >= r.interval()
		unmuted := !muteUntil.IsZero() && !now.Before(muteUntil)
		if unmuted {
			muteUntil = time.Time{}
		}
		eventsDue := r.pending() && now.Sub(lastRead) >= coalesce
		if scanDue || fullDue || eventsDue || more || unmuted {
			if r.drain(events) > 0 {
				heard(now)
			}
			eventsDue = r.pending() && now.Sub(lastRead) >= coalesce
		}
		if scanDue || (eventsDue && r.rescan) {
			r.syncWatches()
			r.scan()
			r.rescan = false
			if scanDue {
				lastScan = now
			}
		}
		if fullDue || eventsDue || more {
			var err error
			if more, err = r.pollFiles(ctx, fullDue); err != nil {
				return nil // only ctx ends a poll early
			}
			lastRead = now
			if fullDue {
				lastFull = now
			}
		}

		next := time.Duration(0)
		if !more {
			next = min(lastScan.Add(r.cfg.RescanInterval).Sub(now), lastFull.Add(r.interval()).Sub(now))
			if r.pending() {
				next = min(next, lastRead.Add(coalesce).Sub(now))
			} else if !muteUntil.IsZero() {
				next = min(next, muteUntil.Sub(now))
			}
		}
		wait.Reset(max(next, 0))
		ev := events
		if r.pending() || more || !muteUntil.IsZero() {
			ev = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wait.C:
		case e, ok := <-ev:
			if !ok {
				r.lostWatcher(errors.New("event channel closed"))
				events, errs = nil, nil
				continue
			}
			heard(time.Now())
			r.note(e)
		case err, ok := <-errs:
			if !ok {
				r.lostWatcher(errors.New("error channel closed"))
				events, errs = nil, nil
				continue
			}
			// Typically a queue overflow: events were dropped, so any file
			// may have changed.
			r.cfg.Log.Debug("file watcher", "err", err)
			r.touchAll()
			r.rescan = true
		}
	}
}
