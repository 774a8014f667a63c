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
