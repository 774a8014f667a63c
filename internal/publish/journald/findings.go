package journald

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// Field names of finding entries. NODEHEALTH_REASON is on every entry this
// publisher writes; the journal source relies on it to skip them.
const (
	FieldEvent     = "NODEHEALTH_EVENT" // finding, cleared or condition
	FieldReason    = "NODEHEALTH_REASON"
	FieldCondition = "NODEHEALTH_CONDITION"
	FieldSeverity  = "NODEHEALTH_SEVERITY"
	FieldSource    = "NODEHEALTH_SOURCE"
	FieldKey       = "NODEHEALTH_KEY"
	FieldID        = "NODEHEALTH_ID"
	FieldRule      = "NODEHEALTH_RULE"
	FieldCount     = "NODEHEALTH_COUNT"
	FieldDetected  = "NODEHEALTH_DETECTED"
	FieldClearedBy = "NODEHEALTH_CLEARED_BY"
	FieldStatus    = "NODEHEALTH_STATUS"
	// FieldReplay=1 marks an entry written again at start because a stop
	// came between its commit and its first write (at-least-once).
	FieldReplay = "NODEHEALTH_REPLAY"
)

// Event values.
const (
	EventFinding   = "finding"
	EventCleared   = "cleared"
	EventCondition = "condition"
)

// messageIDNamespace is the UUID namespace of MESSAGE_IDs. Never change it:
// the IDs derived from it are an interface operators filter and alert on.
var messageIDNamespace = [16]byte{0x99, 0x35, 0x1c, 0x80, 0x76, 0x58, 0x48, 0xb3, 0xbe, 0x9c, 0xcb, 0xcd, 0xaa, 0x7f, 0x59, 0xa7}

// MessageID is the journal MESSAGE_ID of one kind of entry: a name-based
// (version 5) UUID of event and name in the nodehealthd namespace, written
// as 32 hex digits like systemd's own IDs. Deriving rather than listing
// the IDs gives every reason one, operator rules included, that is stable
// across versions and hosts without a registry to keep in sync:
//
//	finding raised:    MessageID("finding", reason)
//	finding cleared:   MessageID("cleared", reason)
//	condition change:  MessageID("condition", type+"="+status)
func MessageID(event, name string) string {
	h := sha1.New()
	h.Write(messageIDNamespace[:])
	h.Write([]byte(event + "/" + name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return hex.EncodeToString(u[:])
}

// Publisher writes one journal entry per new finding, cleared finding and
// condition change.
type Publisher struct {
	out *sink
	log *slog.Logger

	mu   sync.Mutex
	last map[string]condition.Condition
}

var (
	_ publish.Publisher = (*Publisher)(nil)
	_ publish.Replayer  = (*Publisher)(nil)
)

// NewPublisher returns a publisher writing to the journal from the
// logger's queue, so that logs and findings keep their order; log receives
// send failures.
func NewPublisher(log *slog.Logger) *Publisher { return newPublisher(std(), log) }

func newPublisher(out *sink, log *slog.Logger) *Publisher {
	return &Publisher{out: out, log: log, last: map[string]condition.Condition{}}
}

// Publish queues the entries of one commit; it never waits for journald
// (see internal/outqueue).
func (p *Publisher) Publish(u publish.Update) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range u.New {
		p.finding(&u.New[i], false)
	}
	for i := range u.Cleared {
		p.cleared(&u.Cleared[i], false)
	}
	if u.ConditionsChanged {
		for _, t := range condition.Types(u.Conditions) {
			c, ok := u.Conditions[t]
			if !ok {
				continue
			}
			prev, seen := p.last[t]
			p.last[t] = c
			if seen && prev.Status == c.Status && prev.Reason == c.Reason {
				continue
			}
			// At start only a False condition is news: a healthy
			// condition would otherwise be logged on every restart.
			if !seen && c.Status == condition.True {
				continue
			}
			p.condition(c)
		}
	}
}

// Replay implements publish.Replayer: the entries are written as they
// would have been, marked with NODEHEALTH_REPLAY=1 and "(replayed)".
func (p *Publisher) Replay(fs []finding.Finding, cs []state.Cleared) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range fs {
		p.finding(&fs[i], true)
	}
	for i := range cs {
		p.cleared(&cs[i], true)
	}
}

// severityPriority: a Fatal finding takes a condition False, an error for
// the node; a Warning is a warning.
func severityPriority(s finding.Severity) journal.Priority {
	if s == finding.Fatal {
		return journal.PriErr
	}
	return journal.PriWarning
}

func findingFields(f *finding.Finding, event string) map[string]string {
	m := map[string]string{
		"SYSLOG_IDENTIFIER": Identifier,
		"MESSAGE_ID":        MessageID(event, f.Reason),
		FieldEvent:          event,
		FieldReason:         f.Reason,
		FieldCondition:      f.Condition,
		FieldSeverity:       string(f.Severity),
		FieldSource:         f.Source,
		FieldID:             strconv.FormatUint(f.ID, 10),
		FieldRule:           f.Rule,
		FieldCount:          strconv.Itoa(f.Count),
		FieldDetected:       f.Detected.UTC().Format(time.RFC3339Nano),
	}
	if f.Key != "" {
		m[FieldKey] = f.Key
	}
	return m
}

func describe(f *finding.Finding) string {
	s := f.Reason + " on " + f.Condition
	if f.Key != "" {
		s += " [" + f.Key + "]"
	}
	return s
}

func (p *Publisher) finding(f *finding.Finding, replay bool) {
	msg := fmt.Sprintf("%s %s: %s (source %s, finding #%d)", f.Severity, describe(f), f.Message, f.Source, f.ID)
	p.emit(msg, severityPriority(f.Severity), findingFields(f, EventFinding), replay)
}

func (p *Publisher) cleared(c *state.Cleared, replay bool) {
	f := &c.Finding
	fields := findingFields(f, EventCleared)
	fields[FieldClearedBy] = c.By
	msg := fmt.Sprintf("Cleared %s %s by %s after %s: %s (finding #%d)",
		f.Severity, describe(f), c.By, c.At.Sub(f.Detected).Round(time.Second), f.Message, f.ID)
	p.emit(msg, journal.PriNotice, fields, replay)
}

func (p *Publisher) condition(c condition.Condition) {
	pri := journal.PriNotice
	if c.Status != condition.True {
		pri = journal.PriErr
	}
	fields := map[string]string{
		"SYSLOG_IDENTIFIER": Identifier,
		"MESSAGE_ID":        MessageID(EventCondition, c.Type+"="+c.Status),
		FieldEvent:          EventCondition,
		FieldCondition:      c.Type,
		FieldStatus:         c.Status,
		FieldReason:         c.Reason,
	}
	p.emit(fmt.Sprintf("%s=%s (%s): %s", c.Type, c.Status, c.Reason, c.Message), pri, fields, false)
}

func (p *Publisher) emit(msg string, pri journal.Priority, fields map[string]string, replay bool) {
	if replay {
		fields[FieldReplay] = "1"
		msg += " (replayed)"
	}
	p.out.put(msg, pri, fields, func(err error) {
		p.log.Error("cannot write finding to the journal", "err", err, "entry", msg)
	})
}
