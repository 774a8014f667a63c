package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodehealthd/nodehealthd/internal/atomicfile"
	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/source"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// File names inside the state directory.
const (
	FileName    = "state.json"
	lockName    = "lock"
	requestsDir = "requests"
)

// Store owns the state directory while the daemon runs (see lock.go for
// the two locks it holds). It keeps working when the directory cannot be
// written: Save then fails and the caller goes on from memory.
type Store struct {
	dir  string
	sock *socketLock
	// lock is the flock'ed <dir>/lock, nil while the directory cannot hold
	// one (read-only and never created); lockIno tells a recreated
	// directory from ours.
	lock    *os.File
	lockIno uint64
	log     *slog.Logger
}

// ErrLocked means another process holds the state directory.
var ErrLocked = errors.New("state directory is in use by another nodehealthd")

// staleRequestTemp is how old a request's temporary file must be before
// the daemon removes it: younger ones may belong to a nodehealthctl that is
// writing it right now.
const staleRequestTemp = time.Hour

// Open locks dir (creating it) and loads the state. A missing file gives a
// fresh state; an unreadable, corrupt or newer-schema file is moved aside
// with a log line and the daemon starts clean rather than not at all. A
// directory that cannot be created or written is logged and otherwise
// ignored: detection must not depend on it, and Save reports each failure.
// Only another daemon holding the directory is an error.
func Open(dir string, bootID string, now time.Time, log *slog.Logger) (*Store, *State, error) {
	if err := os.MkdirAll(filepath.Join(dir, requestsDir), 0o750); err != nil {
		log.Error("cannot create the state directory; keeping state in memory until it can be written", "dir", dir, "err", err)
	}
	sock, err := acquireSocket(dir, log)
	if err != nil {
		return nil, nil, err
	}
	s := &Store{dir: dir, sock: sock, log: log}
	if err := s.lockFile(); err != nil {
		sock.close()
		return nil, nil, err
	}
	s.tighten()
	s.removeStaleTemps(now)
	st, err := Read(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, New(bootID, now), nil
	case err != nil:
		aside := filepath.Join(dir, fmt.Sprintf("%s.corrupt-%s", FileName, now.UTC().Format("20060102T150405Z")))
		if rerr := os.Rename(filepath.Join(dir, FileName), aside); rerr != nil {
			log.Error("state file unusable and could not be moved aside; starting clean", "path", filepath.Join(dir, FileName), "err", err, "rename_err", rerr)
		} else {
			log.Error("state file unusable; moved aside, starting clean", "path", filepath.Join(dir, FileName), "moved_to", aside, "err", err)
		}
		return s, New(bootID, now), nil
	}
	return s, st, nil
}

// lockFile takes the flock on <dir>/lock. On a read-only filesystem an
// existing lock file is locked through a read-only descriptor; where none
// exists the socket lock alone guards the directory.
func (s *Store) lockFile() error {
	path := filepath.Join(s.dir, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		if f, err = os.Open(path); err != nil {
			s.log.Debug("no lock file; the lock socket alone guards the state directory", "path", path, "err", err)
			return nil
		}
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%s: %w", s.dir, ErrLocked)
		}
		return fmt.Errorf("lock state directory: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err == nil {
		s.lockIno = st.Ino
	}
	if s.lock != nil {
		s.lock.Close()
	}
	s.lock = f
	return nil
}

// Check makes sure the directory the store writes to is the one it locked:
// if the directory was deleted (or replaced), it is created again and
// locked anew, so that the daemon keeps its state and a second daemon
// cannot take the new directory over. It reports whether it recreated the
// directory, and returns ErrLocked when another process holds the new one.
func (s *Store) Check() (recreated bool, err error) {
	var st unix.Stat_t
	err = unix.Stat(filepath.Join(s.dir, lockName), &st)
	if err == nil && s.lock != nil && st.Ino == s.lockIno {
		return false, nil
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return false, nil // unreadable: Save says what is wrong
	}
	if err := os.MkdirAll(filepath.Join(s.dir, requestsDir), 0o750); err != nil {
		return false, nil // Save says what is wrong
	}
	had := s.lock != nil
	if err := s.lockFile(); err != nil {
		return false, err
	}
	if !had || s.lock == nil {
		return false, nil
	}
	s.log.Warn("the state directory was removed or replaced; created it again and locked it", "dir", s.dir)
	return true, nil
}

// tighten removes group write and all access by others from the directory
// and its files: an operator's chmod or an older package may have left them
// looser, and request files are trusted only because nobody else can write
// them.
func (s *Store) tighten() {
	for _, p := range []struct {
		path string
		mask fs.FileMode
	}{
		{s.dir, 0o027}, {filepath.Join(s.dir, requestsDir), 0o027},
		{filepath.Join(s.dir, FileName), 0o137}, {filepath.Join(s.dir, lockName), 0o137},
	} {
		fi, err := os.Lstat(p.path)
		if err != nil || fi.Mode()&fs.ModeSymlink != 0 || fi.Mode().Perm()&p.mask == 0 {
			continue
		}
		mode := fi.Mode().Perm() &^ p.mask
		if err := os.Chmod(p.path, mode); err != nil {
			s.log.Warn("cannot tighten the mode of a state file", "path", p.path, "mode", fi.Mode().Perm(), "err", err)
			continue
		}
		s.log.Info("tightened the mode of a state file", "path", p.path, "from", fi.Mode().Perm(), "to", mode)
	}
}

// removeStaleTemps deletes temporary files of writes a crash interrupted:
// a crash loop would otherwise fill the filesystem with them.
func (s *Store) removeStaleTemps(now time.Time) {
	stale, _ := filepath.Glob(filepath.Join(s.dir, "."+FileName+".tmp-*"))
	reqTemps, _ := filepath.Glob(filepath.Join(s.dir, requestsDir, ".*.tmp-*"))
	for _, p := range reqTemps {
		if fi, err := os.Lstat(p); err == nil && now.Sub(fi.ModTime()) > staleRequestTemp {
			stale = append(stale, p)
		}
	}
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			s.log.Warn("cannot remove a stale temporary file", "path", p, "err", err)
			continue
		}
		s.log.Info("removed a temporary file left by an interrupted write", "path", p)
	}
}

// SetLive sets what the lock socket tells nodehealthctl. It leaves the
// published sections alone.
func (s *Store) SetLive(l Live) { s.sock.set(l) }

// PublishLive adds (or replaces) section name of Live: read is called for
// every query and its result sent as JSON. It must return at once (it runs
// on the socket's goroutine) and must not return values that others go on
// writing.
func (s *Store) PublishLive(name string, read func() any) { s.sock.publish(name, read) }

// Read loads the state file of dir without locking, for readers such as
// nodehealthctl status. The daemon replaces the file atomically, so a
// reader always sees a complete version.
func Read(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		return nil, err
	}
	return decode(b)
}

func decode(b []byte) (*State, error) {
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("state file is not valid JSON: %w", err)
	}
	if head.Version != Version {
		return nil, fmt.Errorf("state file has schema version %d, this nodehealthd reads version %d", head.Version, Version)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var st State
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("state file does not match schema version %d: %w", Version, err)
	}
	if st.Positions == nil {
		st.Positions = map[string]source.Position{}
	}
	if st.Conditions == nil {
		st.Conditions = map[string]condition.Condition{}
	}
	if st.Cluster != nil && len(st.Cluster.FormerEvents) > 0 {
		if len(st.SentEvents) == 0 {
			st.SentEvents = st.Cluster.FormerEvents
		}
		st.Cluster.FormerEvents = nil
	}
	return &st, nil
}

// Save writes st crash-safely: a temporary file is written and fsynced,
// renamed over the old one, and the directory fsynced so that the rename
// itself survives a power loss.
func (s *Store) Save(st *State, now time.Time) error {
	b, err := s.Encode(st, now)
	if err != nil {
		return err
	}
	return s.Write(b)
}

// Encode is the first half of Save, which needs st: it checks the lock and
// returns the file's content as of now. The daemon encodes in the goroutine
// that owns st and writes from another, so that a hung disk holds up only
// the write.
func (s *Store) Encode(st *State, now time.Time) ([]byte, error) {
	if _, err := s.Check(); err != nil {
		return nil, err
	}
	st.Version = Version
	st.UpdatedAt = now
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	return b, nil
}

// Write is the second half of Save: it replaces the state file with b,
// crash-safely.
func (s *Store) Write(b []byte) error { return writeAtomic(s.dir, FileName, b) }

// writeAtomic writes dir/name crash-safely, as the state's owner and its
// group may read it.
func writeAtomic(dir, name string, b []byte) error {
	if err := atomicfile.Write(filepath.Join(dir, name), b, 0o640); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// Close releases the locks.
func (s *Store) Close() error {
	if s.lock != nil {
		s.lock.Close()
	}
	return s.sock.close()
}

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

// A Request is a change asked for by nodehealthctl while the daemon runs.
type Request struct {
	Clear *finding.Clear `json:"clear,omitempty"`
}

// A PendingRequest is a request file waiting in the requests directory.
type PendingRequest struct {
	Name    string
	Request *Request
	// Err says why the file is refused (foreign owner, not a regular file,
	// not a request); the caller logs it and removes the file.
	Err error
}

// requestGrace is how long a request file that does not parse is left
// alone: a writer that ignores the atomic-write protocol may still be
// writing it.
const requestGrace = 30 * time.Second

// maxRequestBytes bounds what is read of a request file.
const maxRequestBytes = 64 << 10

// PendingRequests returns the request files waiting in the requests
// directory, oldest first. Only regular files owned by root or by the
// daemon's own user are trusted (the directory is not writable by anyone
// else unless an operator loosened it); others come back with Err set.
//
// The protocol (docs/operator-guide.md): write the request to a name that
// does not end in ".json" in the same directory, fsync, then rename it to
// "<unix-nanoseconds>-<pid>.json". A file that does not parse is skipped
// for requestGrace after its last change, then refused.
func (s *Store) PendingRequests(now time.Time) []PendingRequest {
	dir := filepath.Join(s.dir, requestsDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []PendingRequest
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := PendingRequest{Name: e.Name()}
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // gone meanwhile
		}
		r, err := readRequest(filepath.Join(dir, e.Name()), fi)
		switch {
		case errors.Is(err, errUnparsable) && now.Sub(fi.ModTime()) < requestGrace:
			continue
		case err != nil:
			p.Err = err
		default:
			p.Request = r
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

var errUnparsable = errors.New("not a valid request")

func readRequest(path string, fi fs.FileInfo) (*Request, error) {
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("owned by uid %d; only root's requests are applied", st.Uid)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRequestBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRequestBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxRequestBytes)
	}
	var r Request
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", errUnparsable, err)
	}
	if r.Clear == nil {
		return nil, fmt.Errorf("%w: it asks for nothing", errUnparsable)
	}
	return &r, nil
}

// DoneRequest deletes a request file. The caller deletes an applied
// request only once a save that includes it succeeded, so the request
// stays queued (and nodehealthctl keeps waiting) while the state cannot be
// written; a crash in between only re-applies an idempotent clear.
func (s *Store) DoneRequest(name string) {
	_ = os.Remove(filepath.Join(s.dir, requestsDir, name))
}

// SubmitRequest queues r for the running daemon and returns the file it
// wrote; the daemon deletes it once applied.
func SubmitRequest(dir string, r Request, now time.Time) (string, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	name := fmt.Sprintf("%d-%d.json", now.UnixNano(), os.Getpid())
	if err := writeAtomic(filepath.Join(dir, requestsDir), name, b); err != nil {
		return "", err
	}
	return filepath.Join(dir, requestsDir, name), nil
}

// TryLock opens the store only if no daemon holds it, for tools that then
// change the state directly. It returns ErrLocked when a daemon runs.
func TryLock(dir string, log *slog.Logger) (*Store, *State, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, nil, err
	}
	// Read first so that a corrupt file is reported, not moved aside: only
	// the daemon decides to start clean.
	st, err := Read(dir)
	if err != nil {
		return nil, nil, err
	}
	return Open(dir, st.BootID, time.Now(), log)
}
