package policy

import (
	"slices"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// Observation is what a producer saw, as its rule or reason declaration
// builds the finding by default: condition, reason, severity, recovery,
// message and key before any override. Its message may share memory with
// the record it came from; the finding Apply returns does not.
type Observation struct {
	finding.Finding
	// Threshold is the producer's own (a rule's threshold:); the zero value
	// makes every observation a finding.
	Threshold Threshold
}

// Event is an observation that names no reason of its own: the compiled
// rules named in Rules build its finding from Captures exactly as they
// build one from the named captures of a log line, so that an operator's
// change to those rules, their sets or their reasons applies to it too.
// NVML's XID events are the kmsg XID rules' findings this way.
type Event struct {
	// Rules are tried in order; the first whose captureIn and captureNotIn
	// admit the captures builds the finding.
	Rules    []string
	Captures map[string]string
	// Source is the finding's source ("nvml"); it must differ from the
	// log source's for the two sightings to be merged (state.Raise).
	Source string
	Time   time.Time
}

// Windows is the threshold bookkeeping: observation times per reason and
// key. It is saved in the state file with the source positions so that a
// crash neither loses nor double-counts an observation.
type Windows map[string]Window

// Window holds the recent observation times of one reason and key.
type Window struct {
	Times  []time.Time   `json:"times"`
	Window time.Duration `json:"window"`
}

// maxKeyBytes bounds a finding's key, which may come from a log line.
const maxKeyBytes = 256

// Stage applies a policy to one ordered stream of observations. It keeps
// threshold windows and a cache of cleaned messages, so it is not safe
// for concurrent use: the daemon's pipeline goroutine owns its stage.
type Stage struct {
	policy  *Policy
	bootID  string
	windows Windows
	dirty   bool
	cleaner finding.Cleaner
	// history is the recurrence memory (recur.go); nil reports none.
	history History
}

// Stage returns a stage applying p, stamping findings with bootID and
// counting thresholds on from windows (from the state file; nil for none).
func (p *Policy) Stage(bootID string, windows Windows) *Stage {
	s := &Stage{policy: p, bootID: bootID}
	s.setWindows(windows)
	return s
}

// Apply turns an observation into the finding to record, or reports false
// when the policy drops it: its reason is switched off, or its threshold
// is not reached yet.
func (s *Stage) Apply(o Observation) (finding.Finding, bool) {
	f := o.Finding
	var th Threshold
	var enabled bool
	f.Severity, th, f.Recovery, enabled = s.policy.apply(f.Reason, f.Severity, o.Threshold, f.Recovery)
	if !enabled {
		return finding.Finding{}, false
	}
	if f.Detected.IsZero() {
		f.Detected = time.Now()
	}
	if f.LastSeen.IsZero() {
		f.LastSeen = f.Detected
	}
	if f.Count < 1 {
		f.Count = 1
	}
	if th.Count > 1 && !s.count(f.Reason+"\x00"+f.Key, f.Detected, th) {
		return finding.Finding{}, false
	}
	// The cleaner's result is a copy: a log record's message may share its
	// memory with the rest of its batch (source.Text).
	f.Message = s.cleaner.Clean(f.Message)
	f.Key = finding.Truncate(f.Key, maxKeyBytes)
	f.BootID = s.bootID
	if s.history != nil && f.Severity == finding.Fatal && !f.Recovery.KeepAcrossReboot {
		s.recur(&f)
	}
	return f, true
}

// count records an observation in the reason/key window and reports
// whether the threshold is reached; reaching it empties the window.
func (s *Stage) count(k string, at time.Time, t Threshold) bool {
	w := s.windows[k]
	w.Window = time.Duration(t.Window)
	keep := w.Times[:0]
	for _, ts := range w.Times {
		if at.Sub(ts) < w.Window {
			keep = append(keep, ts)
		}
	}
	w.Times = append(keep, at)
	s.dirty = true
	if len(w.Times) >= t.Count {
		delete(s.windows, k)
		return true
	}
	s.windows[k] = w
	return false
}

// setWindows restores threshold state (from the state file).
func (s *Stage) setWindows(w Windows) {
	s.windows = make(Windows, len(w))
	for k, v := range w {
		s.windows[k] = Window{Times: slices.Clone(v.Times), Window: v.Window}
	}
}

// Windows returns a copy of the threshold state and whether it changed
// since the last call.
func (s *Stage) Windows() (Windows, bool) {
	out := make(Windows, len(s.windows))
	for k, v := range s.windows {
		out[k] = Window{Times: slices.Clone(v.Times), Window: v.Window}
	}
	changed := s.dirty
	s.dirty = false
	return out, changed
}

// Expire forgets windows with no observation inside their span, bounding
// memory for keys that never reach their threshold.
func (s *Stage) Expire(now time.Time) {
	for k, w := range s.windows {
		if len(w.Times) == 0 || now.Sub(w.Times[len(w.Times)-1]) > w.Window {
			delete(s.windows, k)
			s.dirty = true
		}
	}
}
