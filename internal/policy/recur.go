package policy

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
	"github.com/nodehealthd/nodehealthd/internal/repair"
)

// Escalation is reasons.<Reason>.escalate: when a Fatal finding of the
// reason is seen in a boot and AfterReboots earlier boots within Within saw
// it too, it is recorded under Reason instead, so that repair automation
// acting per reason replaces the node rather than rebooting it again.
// Within is also the window the reason's recurrences are counted in for
// messages, events and metrics; AfterReboots 0 never escalates (it
// switches a default escalation off, or only sets the window).
type Escalation struct {
	AfterReboots int      `yaml:"afterReboots"`
	Within       Duration `yaml:"within,omitempty"`
	Reason       string   `yaml:"reason,omitempty"`
}

// DefaultRecurWithin is the recurrence window of a reason without an
// escalation, and of an escalation that names none.
const DefaultRecurWithin = 24 * time.Hour

// Bounds of History: it is rewritten with the state file on every commit.
const (
	// MaxBootsPerReason is how many boots a reason is remembered in.
	MaxBootsPerReason = 8
	// MaxHistoryReasons is how many reasons are remembered; past it the
	// reason seen least recently is forgotten.
	MaxHistoryReasons = 64
)

// History is the Fatal findings' memory across reboots: per reason as
// detected (before any escalation), the boots it was seen in, oldest
// first, each with its first sighting. It is saved in the state file.
type History map[string][]Sighting

// Sighting is the first finding of a reason in one boot.
type Sighting struct {
	BootID string    `json:"bootID"`
	At     time.Time `json:"at"`
	Key    string    `json:"key,omitempty"`
}

// record notes reason in boot and reports whether the history changed.
func (h History) record(reason, boot string, at time.Time, key string) bool {
	ss := h[reason]
	if n := len(ss); n > 0 && ss[n-1].BootID == boot {
		return false
	}
	if len(ss) >= MaxBootsPerReason {
		ss = slices.Delete(ss, 0, len(ss)-MaxBootsPerReason+1)
	}
	h[reason] = append(ss, Sighting{BootID: boot, At: at, Key: key})
	for len(h) > MaxHistoryReasons {
		var stalest string
		for r, ss := range h {
			if stalest == "" || ss[len(ss)-1].At.Before(h[stalest][len(h[stalest])-1].At) {
				stalest = r
			}
		}
		delete(h, stalest)
	}
	return true
}

// reboots counts the boots other than boot that saw reason within
// within before at.
func (h History) reboots(reason, boot string, at time.Time, within time.Duration) int {
	n := 0
	for _, s := range h[reason] {
		if s.BootID != boot && at.Sub(s.At) <= within {
			n++
		}
	}
	return n
}

func (h History) clone() History {
	out := make(History, len(h))
	for r, ss := range h {
		out[r] = slices.Clone(ss)
	}
	return out
}

// escalation is reason's escalation: config.yaml's, else the default one
// (internal/repair), else none (AfterReboots 0), with Within filled in.
func (p *Policy) escalation(reason string) Escalation {
	ov, _ := p.override(reason)
	var e Escalation
	switch {
	case ov.Escalate != nil:
		e = *ov.Escalate
	default:
		if to, ok := repair.DefaultEscalation(reason); ok {
			e = Escalation{AfterReboots: 1, Reason: to}
		}
	}
	if e.Within <= 0 {
		e.Within = Duration(DefaultRecurWithin)
	}
	return e
}

// recur marks f, a Fatal finding of a reason a reboot clears, as a
// recurrence when earlier boots saw its reason within the window, applies
// the escalation, and remembers this boot. A restart within a boot is not
// a reboot: a boot is counted once however often the daemon starts in it.
func (s *Stage) recur(f *finding.Finding) {
	detected := f.Reason
	e := s.policy.escalation(detected)
	within := time.Duration(e.Within)
	if n := s.history.reboots(detected, s.bootID, f.Detected, within); n > 0 {
		r := &finding.Recurrence{Reason: detected, Reboots: n, Within: within}
		if e.AfterReboots > 0 && n >= e.AfterReboots && e.Reason != "" {
			r.Escalated = true
			f.Reason = e.Reason
		}
		f.Recurrence = r
		note := " (" + r.Describe() + ")"
		f.Message = finding.Truncate(f.Message, finding.MaxMessageBytes-len(note)) + note
	}
	if s.history.record(detected, s.bootID, f.Detected, f.Key) {
		s.dirty = true
	}
}

// SetHistory restores the recurrence history (from the state file).
// Without one the stage reports no recurrences (nodehealthd --once,
// nodehealthctl test).
func (s *Stage) SetHistory(h History) {
	s.history = h.clone()
}

// History returns a copy of the recurrence history.
func (s *Stage) History() History { return s.history.clone() }

// Reasons of findings the policy itself raises.
const (
	ReasonRecurredAfterReboot = "RecurredAfterReboot"
	recurrenceSource          = "recurrence"
)

// RecurredAfterReboot is the Warning raised, once, when a Fatal finding
// recurs after a reboot: the Kubernetes event that says so.
var RecurredAfterReboot = reason.Declare(reason.Reason{
	Name: ReasonRecurredAfterReboot,
	// The event is raised under the recurring finding's condition; this
	// is the declaration's default only.
	Condition: finding.AcceleratedHardwareReady,
	Severity:  finding.Warning,
	Detector:  recurrenceSource,
	Description: "A Fatal reason that a reboot clears was detected again after one or more reboots within its " +
		"recurrence window (reasons.<Reason>.escalate.within, default 24h): the reboot did not cure it. The event " +
		"names the reason, the reboots and, when the recurrence was escalated (reasons.<Reason>.escalate), the " +
		"reason it is now reported as. Raised under the condition of the recurring finding, once per new finding: " +
		"a daemon restart within a boot neither counts as a reboot nor raises it again.",
	Action: "Treat the node's hardware as suspect: a fault that survives a reboot usually needs a replacement. " +
		"nodehealthctl status lists the recurrences; configure reasons.<Reason>.escalate so that repair " +
		"automation replaces the node instead of rebooting it.",
	Recovery: "An event; the recurring finding's condition recovers as that finding does.",
})

// RecurrenceObservation is the RecurredAfterReboot observation for f, a
// new Fatal finding that recurred.
func RecurrenceObservation(f finding.Finding) Observation {
	r := f.Recurrence
	plain := *r
	plain.Escalated = false
	msg := r.Reason + " " + plain.Describe()
	if f.Key != "" {
		msg = r.Reason + " (" + f.Key + ") " + plain.Describe()
	}
	if r.Escalated {
		msg += "; reported as " + f.Reason + " from now on"
	}
	res := RecurredAfterReboot.Result(msg, r.Reason+"/"+f.Key)
	res.Condition = f.Condition
	return Observation{Finding: res.Finding(recurrenceSource, recurrenceSource, f.Detected)}
}

// checkEscalation validates reasons.<name>.escalate.
func checkEscalation(name string, sev finding.Severity, cond string, e Escalation, known Producers) error {
	var errs []error
	if e.AfterReboots < 0 {
		errs = append(errs, errors.New("escalate.afterReboots must not be negative"))
	}
	if e.Within < 0 {
		errs = append(errs, errors.New("escalate.within must not be negative"))
	}
	if e.AfterReboots > 0 {
		switch to, ok := known.Produced(e.Reason); {
		case e.Reason == "":
			errs = append(errs, errors.New("escalate.reason is missing (the reason a recurrence is reported as)"))
		case !reason.Plain(e.Reason):
			errs = append(errs, fmt.Errorf("escalate.reason %q is not a reason (letters, digits and '-', starting with a letter)", e.Reason))
		case e.Reason == name:
			errs = append(errs, fmt.Errorf("escalate.reason %s is the reason itself", e.Reason))
		case !ok:
			errs = append(errs, fmt.Errorf("escalate.reason %s: no rule, probe or NVML check produces this reason", e.Reason))
		case to.Condition != cond:
			errs = append(errs, fmt.Errorf("escalate.reason %s belongs to condition %s, not %s: a finding keeps its condition", e.Reason, to.Condition, cond))
		case to.Severity != finding.Fatal:
			errs = append(errs, fmt.Errorf("escalate.reason %s is a Warning reason: escalate to a Fatal one, which repair automation acts on", e.Reason))
		}
		if sev != finding.Fatal {
			errs = append(errs, fmt.Errorf("escalate applies to Fatal findings, and %s is a %s", name, sev))
		}
	}
	return errors.Join(errs...)
}

// Producers tells config validation what produces a reason as findings
// carry it: its condition and default severity.
type Producers interface {
	Produced(reason string) (Produced, bool)
}

// Produced is what a rule or declaration makes of a reason by default.
type Produced struct {
	Condition string
	Severity  finding.Severity
}
