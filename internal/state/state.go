// Package state is the daemon's memory across restarts: source positions,
// active findings, condition states, rule windows and pending outbound
// records, saved together in one crash-safe file so that a kill -9 at any
// moment neither loses nor repeats a finding.
package state

import (
	"slices"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

// Version is the schema version written to the file. Readers refuse newer
// versions instead of misreading them.
const Version = 1

// Bounds on what the file keeps; it is rewritten on every commit.
const (
	MaxRecent = 1000
	MaxOutbox = 2000
)

// State is the content of the state file.
type State struct {
	Version int `json:"version"`
	// BootID is the boot the active findings were last checked against.
	BootID string `json:"bootID"`
	// FirstStart is when the daemon first ran on this node; files that
	// appear after it are read from their beginning.
	FirstStart time.Time `json:"firstStart"`
	UpdatedAt  time.Time `json:"updatedAt"`
	NextID     uint64    `json:"nextID"`

	Positions map[string]source.Position `json:"positions"`
	// Lost counts records each source could not deliver (ring overwrite,
	// journal vacuum), over the node's lifetime.
	Lost map[string]uint64 `json:"lost,omitempty"`
	// Windows is the policy stage's threshold state.
	Windows policy.Windows `json:"windows,omitempty"`
	// History is the boots each Fatal reason was seen in, for recurrence
	// after reboots (bounded: policy.MaxBootsPerReason, MaxHistoryReasons).
	History policy.History `json:"history,omitempty"`

	// Active holds the active Fatal findings.
	Active []finding.Finding `json:"active"`
	// Recent holds the latest committed findings of both severities,
	// oldest first, for status output and history.
	Recent []finding.Finding `json:"recent"`
	// Cleared holds the latest cleared findings, oldest first.
	Cleared []Cleared `json:"cleared,omitempty"`

	Conditions map[string]condition.Condition `json:"conditions"`
	// Monitored and Accelerator are what the conditions were computed for,
	// so tools can recompute them after changing findings.
	Monitored   []string              `json:"monitored,omitempty"`
	Accelerator condition.Accelerator `json:"accelerator,omitempty"`
	// Custom holds the condition types beyond the five the daemon owns
	// (custom.go).
	Custom map[string]CustomCondition `json:"customConditions,omitempty"`

	// Outbox holds records waiting for a publisher that must not lose them
	// (Kubernetes events); it survives restarts and API outages.
	Outbox        []Outbound `json:"outbox,omitempty"`
	OutboxDropped uint64     `json:"outboxDropped,omitempty"`
	// Coalescing holds Warnings seen again within CoalesceWindow of an
	// identical one, not yet committed as a finding (see Raise). They are
	// saved with the positions of the records they came from, so that a
	// crash neither loses nor counts them twice.
	Coalescing []Coalesced `json:"coalescing,omitempty"`
	// coalescing indexes the Warnings seen recently (coalesce.go).
	coalescing map[coalesceKey]*coalesceEntry
	// Cluster describes the link to the API server, for status output.
	Cluster *ClusterLink `json:"cluster,omitempty"`
	// SentEvents is the cluster publisher's memory of the Kubernetes
	// events it sent recently enough to be counted up when the same
	// Warning repeats, so that a repeat after a restart patches the
	// existing event instead of creating a second one. It is the
	// publisher's alone; the pipeline only keeps it.
	SentEvents []SentEvent `json:"sentEvents,omitempty"`

	// Logged is how far the log publishers (journal, console) have written
	// the findings and clears above, so that a restart writes again what a
	// crash kept them from writing. Nil in files written before it existed:
	// everything in them counts as written.
	Logged *LogMark `json:"logged,omitempty"`
	// LastSaveFailure is the latest episode in which this file could not be
	// written (detection and publishing went on from memory).
	LastSaveFailure *SaveFailure `json:"lastSaveFailure,omitempty"`
}

// Coalesced is the repeats of one Warning waiting to be committed as one
// finding: Finding.Count of them, the first Detected, the last LastSeen.
type Coalesced struct {
	Finding finding.Finding `json:"finding"`
	// Since is when the first of them was seen (the daemon's clock): they
	// are committed CoalesceWindow later at the latest.
	Since time.Time `json:"since"`
}

// LogMark is a position in the findings and clears of a state.
type LogMark struct {
	// Finding is the highest finding ID written.
	Finding uint64 `json:"finding"`
	// Cleared is the time of the newest clear written.
	Cleared time.Time `json:"cleared,omitzero"`
}

// Cleared records how and when a finding ended.
type Cleared struct {
	Finding finding.Finding `json:"finding"`
	At      time.Time       `json:"at"`
	By      string          `json:"by"`
}

// Outbound is one record waiting to be delivered.
type Outbound struct {
	ID      uint64          `json:"id"`
	Finding finding.Finding `json:"finding"`
}

// ClusterLink is what the cluster publisher last reported.
type ClusterLink struct {
	Node           string    `json:"node"`
	Connected      bool      `json:"connected"`
	LastSuccess    time.Time `json:"lastSuccess,omitzero"`
	LastError      string    `json:"lastError,omitempty"`
	PendingWrites  int       `json:"pendingWrites"`
	CredentialPath string    `json:"credentialPath,omitempty"`
	// EventsDropped counts Warning findings never sent as events (per-reason
	// rate limit, or too old to send), over the node's lifetime.
	EventsDropped uint64 `json:"eventsDropped,omitempty"`
	// Unauthenticated says the last call failed for want of credentials:
	// the exec credential plugin failed or the API server answered 401.
	Unauthenticated bool `json:"unauthenticated,omitempty"`
	// FormerEvents is where state files written before SentEvents had a
	// section of its own kept it; read once (decode moves it), never
	// written.
	FormerEvents []SentEvent `json:"events,omitempty"`
}

// Equal reports whether l and o say the same.
func (l ClusterLink) Equal(o ClusterLink) bool {
	return l.Node == o.Node && l.Connected == o.Connected && l.LastSuccess.Equal(o.LastSuccess) &&
		l.LastError == o.LastError && l.PendingWrites == o.PendingWrites &&
		l.CredentialPath == o.CredentialPath && l.EventsDropped == o.EventsDropped &&
		l.Unauthenticated == o.Unauthenticated
}

// SentEvent is a Kubernetes event the cluster publisher created: the
// finding fields that make a repeat "the same event", and the event.
type SentEvent struct {
	Condition string    `json:"condition"`
	Reason    string    `json:"reason"`
	Message   string    `json:"message"`
	Name      string    `json:"name"`
	Count     int32     `json:"count"`
	First     time.Time `json:"first"`
	Written   time.Time `json:"written"`
	// NodeUID is the Node's UID when it was written: events of an earlier
	// registration of the node are not counted up.
	NodeUID string `json:"nodeUID"`
}

// New returns an empty state for a first start.
func New(bootID string, now time.Time) *State {
	return &State{
		Version:    Version,
		BootID:     bootID,
		FirstStart: now,
		Positions:  map[string]source.Position{},
		Conditions: map[string]condition.Condition{},
		Logged:     &LogMark{},
	}
}

// Unlogged returns the findings and clears committed after the log mark:
// what the log publishers had not written when the daemon last stopped.
func (s *State) Unlogged() ([]finding.Finding, []Cleared) {
	if s.Logged == nil {
		return nil, nil
	}
	var fs []finding.Finding
	for _, f := range s.Recent {
		if f.ID > s.Logged.Finding {
			fs = append(fs, f)
		}
	}
	var cs []Cleared
	for _, c := range s.Cleared {
		if c.At.After(s.Logged.Cleared) {
			cs = append(cs, c)
		}
	}
	return fs, cs
}

// MarkLogged moves the log mark past fs and cs and reports whether it
// moved.
func (s *State) MarkLogged(fs []finding.Finding, cs []Cleared) bool {
	if s.Logged == nil {
		s.Logged = &LogMark{}
	}
	moved := false
	for _, f := range fs {
		if f.ID > s.Logged.Finding {
			s.Logged.Finding, moved = f.ID, true
		}
	}
	for _, c := range cs {
		if c.At.After(s.Logged.Cleared) {
			s.Logged.Cleared, moved = c.At, true
		}
	}
	return moved
}

// Kind is the condition, reason and severity of findings: what metrics
// count them by.
type Kind struct {
	Condition, Reason string
	Severity          finding.Severity
}

// KindOf returns f's Kind.
func KindOf(f *finding.Finding) Kind { return Kind{f.Condition, f.Reason, f.Severity} }

// Changes is what one batch of operations did, for the publishers.
type Changes struct {
	New     []finding.Finding
	Cleared []Cleared
	// Repeats counts occurrences folded into findings committed before
	// (an active Fatal seen again, a Warning from a second source). The
	// occurrences a new finding stands for are its Count.
	Repeats map[Kind]int
	// Touched means something other than New/Cleared changed (a repeat of
	// an active finding, a position) and the state must be saved.
	Touched bool
}

func (c *Changes) Empty() bool { return len(c.New) == 0 && len(c.Cleared) == 0 && !c.Touched }

func (c *Changes) repeat(f *finding.Finding) {
	if c.Repeats == nil {
		c.Repeats = map[Kind]int{}
	}
	c.Repeats[KindOf(f)]++
}

// Raise records a finding. A Fatal finding whose identity is already active
// only refreshes it (count, last seen, latest message): one problem is one
// finding however often it is logged. A Warning is new unless another
// source reported it just before (CrossSourceWindow) or it repeats one
// word for word (CoalesceWindow).
func (s *State) Raise(f finding.Finding, outbox bool, ch *Changes) {
	ch.Touched = true
	if f.Count < 1 {
		f.Count = 1
	}
	if f.Severity == finding.Fatal {
		for i := range s.Active {
			a := &s.Active[i]
			if sameIdentity(a, &f) {
				a.Count++
				if f.LastSeen.After(a.LastSeen) {
					a.LastSeen = f.LastSeen
				}
				a.Message = f.Message
				ch.repeat(a)
				return
			}
		}
	}
	if f.Severity == finding.Warning {
		if s.seenElsewhere(f, ch) {
			return
		}
		s.coalesce(f, outbox, ch)
		return
	}
	s.add(f, outbox, ch)
}

// add commits f as a new finding.
func (s *State) add(f finding.Finding, outbox bool, ch *Changes) {
	s.NextID++
	f.ID = s.NextID
	if f.BootID == "" {
		f.BootID = s.BootID
	}
	if f.Severity == finding.Fatal {
		s.Active = append(s.Active, f)
	}
	s.Recent = appendBounded(s.Recent, f, MaxRecent)
	if outbox && f.Severity == finding.Warning {
		if len(s.Outbox) >= MaxOutbox {
			s.Outbox = s.Outbox[1:]
			s.OutboxDropped++
		}
		s.Outbox = append(s.Outbox, Outbound{ID: f.ID, Finding: f})
	}
	ch.New = append(ch.New, f)
}

func sameIdentity(a, b *finding.Finding) bool {
	return a.Condition == b.Condition && a.Reason == b.Reason && a.Key == b.Key
}

// CrossSourceWindow is how close in time two Warning findings with the same
// identity from different sources must be to count as one fault seen twice
// (an XID reported both by NVML and in kmsg).
const CrossSourceWindow = 30 * time.Second

// seenElsewhere merges f into a recent finding of the same identity that
// another source reported, and reports whether it did.
func (s *State) seenElsewhere(f finding.Finding, ch *Changes) bool {
	for i := len(s.Recent) - 1; i >= 0 && i >= len(s.Recent)-64; i-- {
		r := &s.Recent[i]
		d := r.Detected.Sub(f.Detected)
		if r.Source != f.Source && d < CrossSourceWindow && d > -CrossSourceWindow && sameIdentity(r, &f) {
			r.Count++
			ch.repeat(r)
			return true
		}
	}
	return false
}

// Clear ends the active findings c matches and returns how many it ended.
func (s *State) Clear(c finding.Clear, now time.Time, ch *Changes) int {
	return s.remove(func(f *finding.Finding) bool { return c.Matches(f) }, now, c.By, ch)
}

// Expire ends findings whose recovery.expireAfter has passed since they
// were last seen.
func (s *State) Expire(now time.Time, ch *Changes) int {
	return s.remove(func(f *finding.Finding) bool {
		return f.Recovery.ExpireAfter > 0 && now.Sub(f.LastSeen) >= f.Recovery.ExpireAfter
	}, now, "expiry", ch)
}

// Reboot moves the state to a new boot: findings not kept across reboots
// end, since their evidence belonged to the previous boot.
func (s *State) Reboot(bootID string, now time.Time, ch *Changes) int {
	if s.BootID == bootID {
		return 0
	}
	s.BootID = bootID
	ch.Touched = true
	return s.remove(func(f *finding.Finding) bool { return !f.Recovery.KeepAcrossReboot }, now, "reboot", ch)
}

func (s *State) remove(match func(*finding.Finding) bool, now time.Time, by string, ch *Changes) int {
	n := 0
	keep := s.Active[:0]
	for i := range s.Active {
		f := s.Active[i]
		if match(&f) {
			c := Cleared{Finding: f, At: now, By: by}
			s.Cleared = appendBounded(s.Cleared, c, MaxRecent)
			ch.Cleared = append(ch.Cleared, c)
			n++
			continue
		}
		keep = append(keep, f)
	}
	s.Active = keep
	if n > 0 {
		ch.Touched = true
	}
	return n
}

// UpdateConditions recomputes the conditions and reports whether any
// changed.
func (s *State) UpdateConditions(monitored []string, acc condition.Accelerator, now time.Time) bool {
	s.Monitored, s.Accelerator = monitored, acc
	next := condition.Compute(s.Conditions, monitored, acc, s.declared(), s.Active, now)
	changed := len(next) != len(s.Conditions)
	for t, c := range next {
		if p, ok := s.Conditions[t]; !ok || p != c {
			changed = true
		}
	}
	s.Conditions = next
	return changed
}

// RefreshConditions recomputes the conditions for the monitored types and
// accelerator last used.
func (s *State) RefreshConditions(now time.Time) bool {
	return s.UpdateConditions(s.Monitored, s.Accelerator, now)
}

// Ack removes delivered outbox records up to and including id.
func (s *State) Ack(ids ...uint64) {
	s.Outbox = slices.DeleteFunc(s.Outbox, func(o Outbound) bool { return slices.Contains(ids, o.ID) })
}

// WarningsSince counts Warning findings detected at or after t (a
// coalesced finding is one, whatever its count).
func (s *State) WarningsSince(t time.Time) int {
	n := 0
	for _, f := range s.Recent {
		if f.Severity == finding.Warning && !f.Detected.Before(t) {
			n++
		}
	}
	return n
}

// appendBounded appends x and keeps the newest max elements. Dropping the
// oldest by reslicing leaves the copying to append's occasional growth, so
// that a bounded history costs O(1) per element rather than a move of the
// whole history each time (which a flood of findings made quadratic).
func appendBounded[T any](xs []T, x T, max int) []T {
	if len(xs) >= max {
		clear(xs[:len(xs)-max+1]) // let the garbage collector have them
		xs = xs[len(xs)-max+1:]
	}
	return append(xs, x)
}
