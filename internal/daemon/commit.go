package daemon

import (
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// commit saves the state and then tells the publishers; it is the only
// place state reaches disk. When the state file cannot be written the
// publishers are told anyway (see persist).
func (d *Daemon) commit(now time.Time) {
	defer func() { d.coalesce.at(d.st.CoalesceDue()) }()
	d.applyFeedback()
	if !d.dirty && d.changes.Empty() {
		return
	}
	w, _ := d.stage.Windows()
	d.st.Windows = w
	d.st.History = d.stage.History()
	d.updateConditions(now)
	saved := d.persist(now)
	if !saved && d.changes.Empty() && !d.condChanged && d.stats.SaveFailures == 0 {
		return // backing off: nothing new to publish
	}
	u := publish.Update{Time: now, New: d.changes.New, Cleared: d.changes.Cleared, Repeats: d.changes.Repeats, Conditions: d.st.Conditions, ConditionsChanged: d.condChanged, State: d.st, Stats: d.stats}
	if d.unsaved != nil {
		ep := *d.unsaved
		u.Unsaved = &ep
	}
	for _, p := range d.opts.Publishers {
		p.Publish(u)
	}
	d.resetStats()
	d.condChanged = false
	if saved {
		d.dirty = false
		d.lastCommit = time.Now()
	}
	// The log publishers have written these; the mark reaches the file
	// with the next save, and until then a restart writes them again.
	if d.st.MarkLogged(d.changes.New, d.changes.Cleared) {
		d.dirty = true
	}
	d.changes = state.Changes{}
}

func (d *Daemon) updateConditions(now time.Time) {
	// Custom types are recorded as owned before they are computed, so that
	// one deleted from config is removed from the Node after a restart too.
	if d.st.DeclareConditions(d.cfg.DeclaredConditions(), now) {
		d.condChanged = true
	}
	if d.st.UpdateConditions(d.cfg.Monitored(d.acc != condition.NoAccelerator), d.acc, now) {
		d.condChanged = true
	}
}

// replay gives the log publishers what was committed after their last
// mark: a crash between a commit and its journal entries must not keep
// those entries from the journal (at-least-once; replays are marked).
func (d *Daemon) replay() {
	fs, cs := d.st.Unlogged()
	if len(fs) == 0 && len(cs) == 0 {
		return
	}
	for _, p := range d.opts.Publishers {
		if r, ok := p.(publish.Replayer); ok {
			r.Replay(fs, cs)
		}
	}
	d.st.MarkLogged(fs, cs)
	d.dirty = true
	d.log.Info("wrote findings that a stop kept from the log", "findings", len(fs), "cleared", len(cs))
}

// dueTimer is a timer for one instant that moves: at sets it (the zero
// time stops it), C is nil while it is stopped, so a select on it waits
// for nothing.
type dueTimer struct {
	t   *time.Timer
	due time.Time
}

func (d *dueTimer) at(due time.Time) {
	if due.Equal(d.due) {
		return
	}
	d.due = due
	if d.t != nil {
		d.t.Stop()
	}
	if due.IsZero() {
		d.t = nil
		return
	}
	d.t = time.NewTimer(time.Until(due))
}

// fired forgets the instant that has come, so that at sets the next one
// even when it is the same.
func (d *dueTimer) fired() { d.t, d.due = nil, time.Time{} }

func (d *dueTimer) C() <-chan time.Time {
	if d.t == nil {
		return nil
	}
	return d.t.C
}
