package daemon

import "github.com/nodehealthd/nodehealthd/internal/policy"

// announceRecurrence raises RecurredAfterReboot for a Fatal finding that
// recurred after reboots and that the last Raise committed as new (its
// changes.New began at index from). A repeat of an active finding, such
// as one seen again after a restart within the same boot, is not new and
// raises nothing: the event is sent once per finding.
func (d *Daemon) announceRecurrence(from int) {
	for _, f := range d.changes.New[from:] {
		if f.Recurrence == nil {
			continue
		}
		d.log.Warn("a Fatal finding recurred after reboots", "reason", f.Recurrence.Reason, "key", f.Key,
			"reboots", f.Recurrence.Reboots, "within", f.Recurrence.Within, "reported_as", f.Reason)
		if g, ok := d.stage.Apply(policy.RecurrenceObservation(f)); ok {
			d.st.Raise(g, d.opts.Outbox, &d.changes)
		}
	}
}
