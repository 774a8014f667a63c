package daemon

import (
	"errors"
	"fmt"
	"os"
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
	if err := d.store.Save(d.st, now); err != nil {
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
	if err := d.store.Save(d.st, now); err != nil {
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
