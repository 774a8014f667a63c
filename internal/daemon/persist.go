package daemon

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/reason"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// Saving the state file while it cannot be written is retried with a
// backoff between these bounds; publishing does not wait for it.
const (
	minSaveBackoff = time.Second
	maxSaveBackoff = time.Minute
)

// saveTimeout bounds how long a commit waits for the state file. On a disk
// whose I/O hangs (a stalled EBS volume, a frozen filesystem) the write
// never returns: waited for, it would stop the pipeline inside fsync, and
// detection and publishing with it, on the node whose disk is the problem
// to report. A write that takes longer is a failed save, and the pipeline
// goes on from memory as for a full disk.
const saveTimeout = 5 * time.Second

// errSaveHung is the failure of a write that has not returned.
var errSaveHung = errors.New("the state file write has not returned: is the disk hung?")

// writer writes state files from a goroutine of its own, one at a time.
// busy and since belong to the pipeline goroutine.
type writer struct {
	req  chan []byte
	done chan error
	// abandoned is set when the pipeline stops waiting for a write;
	// returned then tells the pipeline that the write came back, which
	// means the disk answers again: worth a save at once rather than at
	// the end of the backoff.
	abandoned atomic.Bool
	returned  chan struct{}
	busy      bool
	since     time.Time
}

func startWriter(store *state.Store) *writer {
	w := &writer{req: make(chan []byte), done: make(chan error, 1), returned: make(chan struct{}, 1)}
	go func() {
		for b := range w.req {
			w.done <- store.Write(b)
			if w.abandoned.Swap(false) {
				select {
				case w.returned <- struct{}{}:
				default:
				}
			}
		}
	}()
	return w
}

// writeReturned follows the return of an abandoned write: the save that
// failed on it is tried again now.
func (d *Daemon) writeReturned() {
	if d.unsaved != nil {
		d.saveRetry = time.Time{}
		d.commit(time.Now())
	}
}

// save encodes st (the pipeline's) and has the writer write it, waiting at
// most saveTimeout. While an earlier write has not returned, no other is
// started: it fails at once.
func (d *Daemon) save(now time.Time) error {
	w := d.writer
	if w.busy {
		select {
		case <-w.done:
			// A write given up on has returned; the file holds an older
			// state, which this save replaces.
			w.busy = false
		default:
			return fmt.Errorf("%w (for %v)", errSaveHung, time.Since(w.since).Round(time.Second))
		}
	}
	b, err := d.store.Encode(d.st, now)
	if err != nil {
		return err
	}
	w.busy, w.since = true, time.Now()
	w.req <- b
	t := time.NewTimer(saveTimeout)
	defer t.Stop()
	select {
	case err := <-w.done:
		w.busy = false
		return err
	case <-t.C:
		w.abandoned.Store(true)
		return fmt.Errorf("%w (for %v)", errSaveHung, saveTimeout)
	}
}

// reasonReadOnly is the reason for a state directory on a read-only
// filesystem: the catalogue's FilesystemReadOnly, raised by the daemon
// itself because a bind mount or an administrator's remount logs nothing
// in the kernel log. Any other failure (a full /var above all) is
// state.NotPersisted, a Warning of its own.
const reasonReadOnly = "FilesystemReadOnly"

// persist writes the state file and reports whether the file now holds
// the state. While it cannot be written the daemon goes on from memory:
// the failure is logged once per episode, raised as a finding (so that a
// read-only or full /var reaches the cluster although the daemon cannot
// write its own file), shown to the publishers, and retried with backoff.
// When a save succeeds again, the first file written holds everything
// detected meanwhile.
func (d *Daemon) persist(now time.Time) bool {
	if d.unsaved != nil && now.Before(d.saveRetry) {
		return false
	}
	start := time.Now()
	if err := d.save(now); err != nil {
		d.saveFailed(now, err)
		return false
	}
	d.stats.SaveTime = time.Since(start)
	if d.unsaved == nil {
		return true
	}
	ep := *d.unsaved
	ep.Until = now
	d.log.Info("state file written again; it holds everything detected meanwhile",
		"dir", d.store.Dir(), "since", ep.Since, "failures", ep.Failures)
	d.unsaved, d.persistReason = nil, ""
	d.st.LastSaveFailure = &ep
	d.st.Clear(finding.Clear{Reason: reasonReadOnly, Key: d.store.Dir(), By: state.FindingSource}, now, &d.changes)
	d.updateConditions(now)
	d.store.SetLive(state.Live{PID: os.Getpid()})
	// Again, so that the file records the episode and not the finding
	// that just cleared.
	if err := d.save(now); err != nil {
		d.saveFailed(now, err)
		return false
	}
	return true
}

func (d *Daemon) saveFailed(now time.Time, err error) {
	if errors.Is(err, state.ErrLocked) {
		d.stop(err)
		return
	}
	d.stats.SaveFailures++
	if d.unsaved == nil {
		d.unsaved = &state.SaveFailure{Since: now}
		d.saveBackoff = minSaveBackoff
		d.log.Error("cannot write the state file; detection and publishing go on from memory, retrying with backoff",
			"dir", d.store.Dir(), "err", err)
	} else {
		d.saveBackoff = min(2*d.saveBackoff, maxSaveBackoff)
		d.log.Debug("state file still cannot be written", "err", err, "retry_in", d.saveBackoff)
	}
	d.unsaved.Err = err.Error()
	d.unsaved.Failures++
	d.saveRetry = now.Add(d.saveBackoff)
	ep := *d.unsaved
	d.store.SetLive(state.Live{PID: os.Getpid(), Unsaved: &ep})

	msg := fmt.Sprintf("nodehealthd cannot write its state directory %s (%v); detection and publishing continue from memory", d.store.Dir(), err)
	res := state.NotPersisted.Result(msg, d.store.Dir())
	if errors.Is(err, syscall.EROFS) {
		// The catalogue's rule of that reason is the declaration.
		res = reason.Result{Condition: finding.StorageReady, Reason: reasonReadOnly, Severity: finding.Fatal, Message: msg, Key: d.store.Dir()}
	}
	if res.Reason == d.persistReason {
		return
	}
	if d.persistReason == reasonReadOnly {
		d.st.Clear(finding.Clear{Reason: reasonReadOnly, Key: d.store.Dir(), By: state.FindingSource}, now, &d.changes)
	}
	d.persistReason = res.Reason
	f := res.Finding(state.FindingSource, state.FindingSource, now)
	f.Recovery.Probe = true
	d.observe(policy.Observation{Finding: f})
	d.updateConditions(now)
}
