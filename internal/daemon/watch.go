package daemon

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDebounce is how long a change to config.yaml or a rules file waits
// for the writes that follow it before the reload.
const reloadDebounce = 300 * time.Millisecond

// fileWatch forwards the names of changed files in the watched directories
// to the pipeline goroutine. It decides nothing: which names matter depends
// on the config, which only the pipeline goroutine reads, and which
// directories are watched follows that config (follow).
type fileWatch struct {
	w       *fsnotify.Watcher
	events  chan string
	watched map[string]bool
	log     *slog.Logger
	// refused are the directories whose watch failed for a reason other
	// than not existing (the inotify watch limit), logged once until the
	// watch succeeds or the directory is no longer wanted.
	refused map[string]bool
}

// watchFiles starts watching the directories of the current config. Without
// inotify the daemon runs on: SIGHUP still reloads, housekeeping still reads
// requests.
func (d *Daemon) watchFiles(ctx context.Context) *fileWatch {
	fw := &fileWatch{events: make(chan string, 64), watched: map[string]bool{}, log: d.log, refused: map[string]bool{}}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		d.log.Warn("cannot watch rules for changes; reload with SIGHUP", "err", err)
		return fw
	}
	fw.w = w
	fw.follow(d.watchedDirs())
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				select {
				case fw.events <- ev.Name:
				case <-ctx.Done():
					return
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
				// An overflowed queue lost names: look at everything.
				select {
				case fw.events <- "":
				default:
				}
			}
		}
	}()
	return fw
}

// follow makes dirs the watched directories: new ones are added (those that
// do not exist yet are tried again at the next call), old ones removed.
func (fw *fileWatch) follow(dirs []string) {
	if fw.w == nil {
		return
	}
	want := map[string]bool{}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		dir = filepath.Clean(dir)
		want[dir] = true
		if fw.watched[dir] {
			continue
		}
		// A directory that cannot be watched yet is tried again at the
		// next call.
		err := fw.w.Add(dir)
		switch {
		case err == nil:
			fw.watched[dir] = true
			delete(fw.refused, dir)
		case !errors.Is(err, fs.ErrNotExist) && !fw.refused[dir]:
			fw.refused[dir] = true
			fw.log.Warn("cannot watch a directory for changes; reload with SIGHUP until it can be", "dir", dir, "err", err)
		}
	}
	for dir := range fw.watched {
		if !want[dir] {
			_ = fw.w.Remove(dir)
			delete(fw.watched, dir)
		}
	}
	for dir := range fw.refused {
		if !want[dir] {
			delete(fw.refused, dir)
		}
	}
}

func (fw *fileWatch) close() {
	if fw.w != nil {
		_ = fw.w.Close()
	}
}

// watchedDirs are the directories whose changes the daemon acts on: the
// rules directory of the current config (or, while it does not exist, its
// nearest existing ancestor, where it will appear), the config file's
// directory and the request directory.
func (d *Daemon) watchedDirs() []string {
	rules := filepath.Clean(d.rulesDir())
	for rules != filepath.Dir(rules) {
		if _, err := os.Stat(rules); err == nil {
			break
		}
		rules = filepath.Dir(rules)
	}
	return []string{rules, filepath.Dir(d.opts.ConfigPath), d.requestDir()}
}

func (d *Daemon) requestDir() string { return filepath.Join(d.store.Dir(), "requests") }

// What a changed name is to the pipeline (bits).
const (
	changedRequest = 1 << iota
	changedConfig
)

// changed classifies a name fileWatch forwarded; "" means names were lost
// and anything may have changed.
func (d *Daemon) changed(name string) int {
	switch {
	case name == "":
		return changedRequest | changedConfig
	case filepath.Dir(name) == d.requestDir():
		return changedRequest
	case name == d.opts.ConfigPath:
		return changedConfig
	}
	rules := filepath.Clean(d.rulesDir())
	if filepath.Dir(name) == rules || name == rules || strings.HasPrefix(rules, name+string(filepath.Separator)) {
		// A rules file, or the rules directory (or a directory on its
		// way) appearing.
		return changedConfig
	}
	return 0
}
