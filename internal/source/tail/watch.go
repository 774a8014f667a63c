package tail

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/fsnotify/fsnotify"

	"github.com/nodehealthd/nodehealthd/internal/host"
)

// note records what an event asks for; the work waits for the next read.
func (r *runner) note(ev fsnotify.Event) {
	for _, fl := range r.files {
		if ev.Name == fl.host || ev.Name == fl.real {
			fl.dirty, r.dirty = true, true
		}
	}
	// Writes cannot change which files or directories exist; only entries
	// on a configured path matter, not the neighbours in /var/log.
	if ev.Has(fsnotify.Create|fsnotify.Remove|fsnotify.Rename) && r.onPath(ev.Name) {
		r.rescan = true
	}
}

// drain notes the events the watcher already holds and returns how many, so
// that the read about to happen covers them; left for later, each would be
// taken for a new change and cause a read of its own after another
// coalescing delay, and a backlog would delay the events behind it.
func (r *runner) drain(events <-chan fsnotify.Event) (n int) {
	if events == nil {
		return 0
	}
	for {
		// The watcher's reader hands events over one at a time and must
		// run between two of them.
		runtime.Gosched()
		select {
		case ev, ok := <-events:
			if !ok {
				return n
			}
			r.note(ev)
			n++
		default:
			return n
		}
	}
}

// touchAll makes every file dirty, for when events may have been lost.
func (r *runner) touchAll() {
	for _, fl := range r.files {
		fl.dirty = true
	}
	r.dirty = true
}

// lostWatcher falls back to polling for the rest of the run.
func (r *runner) lostWatcher(err error) {
	r.w.Close()
	r.w = nil
	r.cfg.Log.Warn("file watcher stopped; polling files instead", "interval", r.interval(), "err", err)
	r.touchAll()
	r.rescan = true
}

// maxSyncRounds bounds syncWatches on a tree that keeps changing under it;
// the next event or rescan takes over from there.
const maxSyncRounds = 16

// syncWatches makes the watched directories those the paths need now.
// Followers are all made dirty when a watch is added: what changed in that
// directory before the watch existed was not reported.
func (r *runner) syncWatches() {
	if r.w == nil {
		return
	}
	have := map[string]bool{}
	for _, d := range r.w.WatchList() {
		have[d] = true
	}
	var want map[string]bool
	added := false
	failed := map[string]string{}
	// A directory created after want was computed but before its parent's
	// watch was added went unreported; computing want again finds it.
	for range maxSyncRounds {
		next := r.wantDirs()
		if maps.Equal(next, want) {
			break
		}
		want = next
		for d := range want {
			if have[d] {
				continue
			}
			err := r.cfg.addWatch(r.w, d)
			switch {
			case err == nil:
				have[d], added = true, true
			case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
				// Gone again; the next round watches its parent.
			default:
				failed[d] = err.Error()
			}
		}
	}
	for d := range have {
		if !want[d] {
			r.w.Remove(d)
		}
	}
	maps.DeleteFunc(failed, func(d, _ string) bool { return !want[d] })
	for d, msg := range failed {
		if r.unwatched[d] != msg {
			r.cfg.Log.Warn("cannot watch directory; polling its files", "dir", d, "interval", min(r.cfg.PollInterval, r.cfg.fallbackPoll), "err", msg)
		}
	}
	r.unwatched = failed
	if added {
		r.touchAll()
	}
}

// wantDirs lists the directories (with root) to watch: for each path the
// nearest existing ancestor of its fixed leading directories, every
// directory that a pattern's directory components match below that, and the
// directories symbolic links among the files lead to.
func (r *runner) wantDirs() map[string]bool {
	want := map[string]bool{}
	for _, p := range r.cfg.Paths {
		parts := components(p)
		fixed := 0
		for fixed < len(parts)-1 && !isPattern(parts[fixed]) {
			fixed++
		}
		want[r.nearestDir(parts[:fixed])] = true
		for k := fixed + 1; k < len(parts); k++ {
			matches, _ := filepath.Glob(host.Path(r.cfg.Root, "/"+strings.Join(parts[:k], "/")))
			for _, m := range matches {
				if fi, err := os.Stat(m); err == nil && fi.IsDir() {
					want[filepath.Clean(m)] = true
				}
			}
		}
	}
	for _, fl := range r.files {
		if fl.real != "" {
			want[filepath.Dir(fl.real)] = true
		}
	}
	return want
}

// nearestDir returns the deepest existing directory (with root) along parts.
func (r *runner) nearestDir(parts []string) string {
	for k := len(parts); k > 0; k-- {
		d := filepath.Clean(host.Path(r.cfg.Root, "/"+strings.Join(parts[:k], "/")))
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d
		}
	}
	return filepath.Clean(host.Path(r.cfg.Root, "/"))
}

// onPath reports whether name (with root) is a configured path, a match of
// a pattern, or a directory on the way to one: an entry whose appearance or
// removal can change what is followed or watched.
func (r *runner) onPath(name string) bool {
	got := components(r.unroot(name))
	for _, p := range r.cfg.Paths {
		parts := components(p)
		if len(got) > len(parts) {
			continue
		}
		ok, glob := true, isPattern(p)
		for i, g := range got {
			if m, _ := filepath.Match(parts[i], g); (glob && !m) || (!glob && parts[i] != g) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// resolve notes where fl's path leads when it is a symbolic link (say
// /var/log/containers/*.log): writes are reported under the target's name,
// in the target's directory, which then needs a watch of its own.
func (r *runner) resolve(fl *follower) {
	if r.w == nil {
		return
	}
	real := ""
	if fi, err := os.Lstat(fl.host); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if p, err := filepath.EvalSymlinks(fl.host); err == nil && p != fl.host {
			real = p
		}
	}
	if real != fl.real {
		fl.real = real
		r.rescan = true
	}
}

// components splits an absolute path into its names; "/" has none.
func components(p string) []string {
	p = strings.Trim(filepath.Clean(p), "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// isPattern tells a pattern from a plain path, as filepath.Glob would.
func isPattern(p string) bool { return strings.ContainsAny(p, "*?[") }
