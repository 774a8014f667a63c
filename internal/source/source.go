// Package source defines what every log source hands to the rule engine:
// batches of records plus the position to resume from once the batch has been
// processed. Concrete sources live in sub-packages (kmsg, journal, tail).
package source

import (
	"context"
	"time"
)

// Kind names a family of log sources; rules select records by kind.
type Kind string

const (
	KindKmsg    Kind = "kmsg"
	KindJournal Kind = "journal"
	KindFile    Kind = "file"
)

// Record is one log message as the rules see it.
type Record struct {
	Kind Kind
	// Message is the text rules match against: the kmsg message without its
	// "prio,seq,usec,flags;" prefix, the journal MESSAGE field, or a file line
	// without its trailing newline; at most MaxMessageBytes of it.
	Message string
	// Time is the wall-clock time of the record (kmsg: boot time + usec;
	// journal: __REALTIME_TIMESTAMP; file: when the line was read). Rule
	// windows use it so that a replay after a crash gives the same result.
	Time time.Time
	// Identifier is the journal SYSLOG_IDENTIFIER.
	Identifier string
	// Unit is the journal _SYSTEMD_UNIT.
	Unit string
	// Path is the file a tailed line came from, as configured (without --root).
	Path string
	// Priority is the syslog priority 0-7, or -1 when unknown.
	Priority int
	// Facility is the syslog facility (kmsg), or -1 when unknown.
	Facility int
	// Seq is the kmsg sequence number (0 for other kinds).
	Seq uint64
	// Fields holds kmsg dictionary lines (" KEY=value") and selected journal
	// fields; nil when there are none.
	Fields map[string]string
}

// Position is where a source resumes. It is stored in the state file and
// committed only together with the findings the records before it produced.
// Each source uses the fields it needs and leaves the others zero.
type Position struct {
	BootID string `json:"bootID,omitempty"` // kmsg: boot the sequence number belongs to
	Seq    uint64 `json:"seq,omitempty"`    // kmsg: last processed sequence number
	Cursor string `json:"cursor,omitempty"` // journal: cursor of the last processed entry
	Inode  uint64 `json:"inode,omitempty"`  // file: inode of the file the offset belongs to
	Offset int64  `json:"offset,omitempty"` // file: byte offset after the last processed line
}

// IsZero reports whether p holds no position (first start).
func (p Position) IsZero() bool { return p == Position{} }

// Batch is a run of records from one named source and the position just after
// the last of them.
type Batch struct {
	// Source is the name under which Position is stored, e.g. "kmsg",
	// "journal" or "file:/var/log/aws-routed-eni/ipamd.log".
	Source  string
	Records []Record
	// Position is the resume point after Records. A batch may carry no
	// records and only move the position (e.g. a rotated file).
	Position Position
	// Lost counts records the source knows it could not deliver since the
	// previous batch (kmsg ring overwrite, journal vacuum, truncated file).
	Lost uint64
	// Truncated counts the Records whose message was cut to
	// MaxMessageBytes.
	Truncated uint64
	// Recycle, when set, gives the memory of Records (the slice and the
	// text of their messages, see Text) back to the source for a later
	// batch. The receiver calls it once, when it is done with the records,
	// and keeps none of their strings beyond it: what it keeps, it copies.
	// A receiver that does not call it only makes the source allocate.
	Recycle func()
}

// Source produces batches until its context ends. Run returns nil on a clean
// stop; a source that cannot work on this host (no journal, no /dev/kmsg)
// returns an error wrapping ErrUnavailable once and is not restarted.
type Source interface {
	// Name is the prefix of the batch source names this source produces.
	Name() string
	// Run reads records, starting after the positions in start (keyed by
	// batch source name; missing means first start), and sends batches to
	// out. It must not block forever on out when ctx is done.
	Run(ctx context.Context, start map[string]Position, out chan<- Batch) error
}

// ErrUnavailable marks a source that does not exist on this host.
var ErrUnavailable = errUnavailable{}

type errUnavailable struct{}

func (errUnavailable) Error() string { return "source unavailable on this host" }
