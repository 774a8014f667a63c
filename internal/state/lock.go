package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The daemon holds two locks on its state directory:
//
//   - an abstract unix socket named after the directory, which survives the
//     directory being deleted or its filesystem going read-only, and is
//     released by the kernel when the process dies however it dies;
//   - an flock on <dir>/lock, which also works across network namespaces
//     (a tool run in a pod's namespace with the state directory mounted
//     cannot see the socket).
//
// Either one held means another daemon owns the directory. The socket also
// answers with the daemon's Live status, which is how nodehealthctl learns
// what the state file cannot tell it (that it is not being written).

// lockAddr is the abstract socket name for dir. It is derived from the
// device and inode of dir's parent and dir's base name, not from the path
// alone: two containers sharing the host's network namespace (systemd-
// nspawn without --private-network) each have their own /var/lib, and
// deleting dir keeps its parent.
func lockAddr(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = filepath.Clean(dir)
	}
	id := abs
	var st unix.Stat_t
	if unix.Stat(filepath.Dir(abs), &st) == nil {
		id = fmt.Sprintf("%d:%d/%s", st.Dev, st.Ino, filepath.Base(abs))
	}
	sum := sha256.Sum256([]byte(id))
	// A leading '@' is Go's spelling of the abstract namespace.
	return "@nodehealthd/state/" + hex.EncodeToString(sum[:16])
}

// Live is what a running daemon says about itself that its state file
// cannot: chiefly that the file is not being written.
type Live struct {
	PID int `json:"pid"`
	// Unsaved is set while the state file cannot be written.
	Unsaved *SaveFailure `json:"unsaved,omitempty"`
	// Sections are what subsystems publish through Store.PublishLive (e.g.
	// "gpu": the NVML checks' per-GPU readings), read afresh for every
	// query. The state package does not know what they hold.
	Sections map[string]json.RawMessage `json:"sections,omitempty"`
}

// SaveFailure describes an episode in which the state file could not be
// written: detection and publishing went on from memory.
type SaveFailure struct {
	Since time.Time `json:"since"`
	// Until is set once the state file was written again.
	Until    time.Time `json:"until,omitzero"`
	Err      string    `json:"error"`
	Failures uint64    `json:"failures"`
}

// socketLock is the abstract socket half of the lock; it serves Live.
type socketLock struct {
	ln       net.Listener
	log      *slog.Logger
	mu       sync.Mutex
	live     Live
	sections map[string]func() any
}

func acquireSocket(dir string, log *slog.Logger) (*socketLock, error) {
	ln, err := net.Listen("unix", lockAddr(dir))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	l := &socketLock{ln: ln, log: log, live: Live{PID: os.Getpid()}, sections: map[string]func() any{}}
	go l.serve()
	return l, nil
}

// serve answers each connection with the current Live and closes it.
// Anyone in the network namespace may connect; nothing in Live is secret.
func (l *socketLock) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: back off rather than spin.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		b, _ := json.Marshal(l.current())
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write(append(b, '\n'))
		_ = c.Close()
	}
}

func (l *socketLock) set(live Live) {
	l.mu.Lock()
	l.live = live
	l.mu.Unlock()
}

func (l *socketLock) publish(name string, read func() any) {
	l.mu.Lock()
	l.sections[name] = read
	l.mu.Unlock()
}

// current is Live with every section read now. The readers run outside
// the lock, so a slow one never holds up SetLive; one that fails is left
// out and logged, and never takes the daemon down.
func (l *socketLock) current() Live {
	l.mu.Lock()
	live := l.live
	readers := maps.Clone(l.sections)
	l.mu.Unlock()
	// A fresh map: the one in l.live, if any, belongs to SetLive's caller.
	sections := maps.Clone(live.Sections)
	for name, read := range readers {
		b, err := readSection(read)
		if err != nil {
			l.log.Error("cannot publish a live status section", "section", name, "err", err)
			continue
		}
		if sections == nil {
			sections = map[string]json.RawMessage{}
		}
		sections[name] = b
	}
	live.Sections = sections
	return live
}

func readSection(read func() any) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return json.Marshal(read())
}

func (l *socketLock) close() error { return l.ln.Close() }

// ErrNotRunning means no daemon holds the state directory (in this network
// namespace).
var ErrNotRunning = errors.New("no nodehealthd runs on this state directory")

// QueryLive asks the daemon holding dir for its Live status.
func QueryLive(dir string, timeout time.Duration) (*Live, error) {
	c, err := net.DialTimeout("unix", lockAddr(dir), timeout)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, ErrNotRunning
		}
		return nil, err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	var l Live
	if err := json.NewDecoder(c).Decode(&l); err != nil {
		return nil, fmt.Errorf("read daemon status: %w", err)
	}
	return &l, nil
}
