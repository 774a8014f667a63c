package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

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

// Store owns the state directory while the daemon runs. An exclusive flock
// on <dir>/lock keeps two daemons (or a daemon and nodehealthctl writing
// directly) from interleaving writes.
type Store struct {
	dir  string
	lock *os.File
	log  *slog.Logger
}

// ErrLocked means another process holds the state directory.
var ErrLocked = errors.New("state directory is in use by another nodehealthd")

// Open locks dir (creating it) and loads the state. A missing file gives a
// fresh state; an unreadable, corrupt or newer-schema file is moved aside
// with a log line and the daemon starts clean rather than not at all.
func Open(dir string, bootID string, now time.Time, log *slog.Logger) (*Store, *State, error) {
	if err := os.MkdirAll(filepath.Join(dir, requestsDir), 0o750); err != nil {
		return nil, nil, fmt.Errorf("create state directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("open state lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil, fmt.Errorf("%s: %w", dir, ErrLocked)
		}
		return nil, nil, fmt.Errorf("lock state directory: %w", err)
	}
	s := &Store{dir: dir, lock: lock, log: log}
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
	return &st, nil
}

// Save writes st crash-safely: a temporary file is written and fsynced,
// renamed over the old one, and the directory fsynced so that the rename
// itself survives a power loss.
func (s *Store) Save(st *State, now time.Time) error {
	st.Version = Version
	st.UpdatedAt = now
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return writeAtomic(s.dir, FileName, b)
}

func writeAtomic(dir, name string, b []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o640); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("replace state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	return nil
}

// Close releases the lock.
func (s *Store) Close() error { return s.lock.Close() }

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

// A Request is a change asked for by nodehealthctl while the daemon runs.
type Request struct {
	Clear *finding.Clear `json:"clear,omitempty"`
}

// PendingRequests returns the request files waiting in dir, oldest first.
// Unreadable files are returned with a nil request so the caller can log
// and delete them.
func (s *Store) PendingRequests() (names []string, reqs []*Request) {
	entries, err := os.ReadDir(filepath.Join(s.dir, requestsDir))
	if err != nil {
		return nil, nil
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		var r Request
		b, err := os.ReadFile(filepath.Join(s.dir, requestsDir, n))
		if err != nil || json.Unmarshal(b, &r) != nil {
			reqs = append(reqs, nil)
			continue
		}
		reqs = append(reqs, &r)
	}
	return names, reqs
}

// DoneRequest deletes a processed request file; the caller saves the state
// first, so a crash in between only re-applies an idempotent clear.
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
