package state

import (
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// CoalesceWindow is how long after a Warning finding an identical one (same
// condition, reason, key, message and source) is folded into a count
// instead of becoming a finding of its own. A log flood of one message is
// then one finding at once and one more per window with the count of the
// repeats, however many lines it is: the state file, the journal, the
// console and the event outbox grow with the problems, not with the lines.
// A repeat waits the window to be committed: the daemon sets a timer for
// CoalesceDue.
const CoalesceWindow = 10 * time.Second

// MaxCoalescing bounds the Warnings tracked for coalescing. When more
// distinct ones arrive within a window, what is pending is committed at
// once and tracking starts over: coalescing is lost for a while, never a
// repeat.
const MaxCoalescing = 1024

// coalesceKey is what makes two Warnings "the same".
type coalesceKey struct {
	condition, reason, key, message, source string
}

func keyOf(f *finding.Finding) coalesceKey {
	return coalesceKey{f.Condition, f.Reason, f.Key, f.Message, f.Source}
}

// coalesceEntry is a Warning seen recently: when its last finding was
// detected (evidence time, so that a replay after a crash decides as the
// first pass did), and its pending repeats, if any, as an index into
// State.Coalescing.
type coalesceEntry struct {
	start   time.Time
	pending int // -1: none
}

// coalesce commits the Warning f as a new finding, or folds it into the
// repeats of an identical one raised less than CoalesceWindow before it.
// Repeats are committed as one finding when the window ends: by the first
// identical Warning after it (which joins them), or by FlushCoalesced.
func (s *State) coalesce(f finding.Finding, outbox bool, ch *Changes) {
	s.indexCoalescing()
	k := keyOf(&f)
	e, ok := s.coalescing[k]
	if !ok {
		if len(s.coalescing) >= MaxCoalescing {
			s.flushAll(outbox, ch)
		}
		s.coalescing[k] = &coalesceEntry{start: f.Detected, pending: -1}
		s.add(f, outbox, ch)
		return
	}
	if d := f.Detected.Sub(e.start); d > -CoalesceWindow && d < CoalesceWindow {
		if e.pending < 0 {
			e.pending = len(s.Coalescing)
			s.Coalescing = append(s.Coalescing, Coalesced{Finding: f, Since: time.Now()})
			return
		}
		p := &s.Coalescing[e.pending].Finding
		p.Count += f.Count
		p.LastSeen = later(p.LastSeen, f.LastSeen)
		return
	}
	// The window is over: the repeats, if any, and f are one new finding,
	// which starts the next window.
	e.start = f.Detected
	if e.pending >= 0 {
		p := s.takePending(e)
		p.Count += f.Count
		p.LastSeen = later(p.LastSeen, f.LastSeen)
		f = p
	}
	s.add(f, outbox, ch)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// takePending removes e's pending repeats from s.Coalescing and returns
// them as a finding.
func (s *State) takePending(e *coalesceEntry) finding.Finding {
	i := e.pending
	f := s.Coalescing[i].Finding
	e.pending = -1
	last := len(s.Coalescing) - 1
	if i != last {
		s.Coalescing[i] = s.Coalescing[last]
		moved := keyOf(&s.Coalescing[i].Finding)
		s.coalescing[moved].pending = i
	}
	s.Coalescing[last] = Coalesced{}
	s.Coalescing = s.Coalescing[:last]
	return f
}

// FlushCoalesced commits as findings the repeats that have waited
// CoalesceWindow since the first of them, and returns how many findings it
// committed.
func (s *State) FlushCoalesced(now time.Time, outbox bool, ch *Changes) int {
	if len(s.Coalescing) == 0 {
		return 0
	}
	s.indexCoalescing()
	n := 0
	for i := 0; i < len(s.Coalescing); {
		c := &s.Coalescing[i]
		if now.Sub(c.Since) < CoalesceWindow {
			i++
			continue
		}
		e := s.coalescing[keyOf(&c.Finding)]
		f := s.takePending(e)
		// Later repeats are measured from the last one committed.
		e.start = later(f.Detected, f.LastSeen)
		s.add(f, outbox, ch)
		n++
		// takePending moved the last element to i: look at i again.
	}
	if n > 0 {
		ch.Touched = true
	}
	return n
}

// flushAll commits every pending repeat and forgets what was tracked.
func (s *State) flushAll(outbox bool, ch *Changes) {
	pending := s.Coalescing
	s.Coalescing = nil
	s.coalescing = map[coalesceKey]*coalesceEntry{}
	for _, c := range pending {
		s.add(c.Finding, outbox, ch)
	}
}

// indexCoalescing builds the index of recent Warnings once per State: from
// the history (Recent) and the pending repeats of a state file just read.
func (s *State) indexCoalescing() {
	if s.coalescing != nil {
		return
	}
	s.coalescing = map[coalesceKey]*coalesceEntry{}
	for i := len(s.Recent) - 1; i >= 0 && len(s.coalescing) < MaxCoalescing; i-- {
		f := &s.Recent[i]
		if f.Severity != finding.Warning {
			continue
		}
		if _, ok := s.coalescing[keyOf(f)]; !ok {
			s.coalescing[keyOf(f)] = &coalesceEntry{start: later(f.Detected, f.LastSeen), pending: -1}
		}
	}
	for i := range s.Coalescing {
		f := &s.Coalescing[i].Finding
		e := s.coalescing[keyOf(f)]
		if e == nil {
			e = &coalesceEntry{start: f.Detected}
			s.coalescing[keyOf(f)] = e
		}
		e.pending = i
	}
}

// CoalesceDue is when the oldest pending repeats are due to be committed
// (FlushCoalesced); zero when none are pending.
func (s *State) CoalesceDue() time.Time {
	var due time.Time
	for i := range s.Coalescing {
		if t := s.Coalescing[i].Since.Add(CoalesceWindow); due.IsZero() || t.Before(due) {
			due = t
		}
	}
	return due
}
