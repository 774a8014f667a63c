package journald

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/prometheus/client_golang/prometheus"
)

// QueueSize is how many entries wait for a journald that does not read.
// Entries are a log line or a finding (messages are bounded), so the
// queue holds at most a few hundred KiB, and is empty while journald reads.
const QueueSize = 512

// Queue sends journal entries from a goroutine of its own. journald reads
// its socket in the loop that also writes to disk: stuck on a hung or full
// disk, or stopped, it stops reading, the socket's queue fills, and a send
// blocks until journald reads again. Sent from the pipeline, or from any
// goroutine that logs, that would stop detection and publishing with it,
// on the node whose disk is the very problem to report. Entries wait here
// instead, at most QueueSize of them; what does not fit is dropped,
// counted in nodehealthd_journal_entries_dropped_total and told in one
// entry once journald reads again.
type Queue struct {
	send    Sender
	ch      chan queued
	dropped atomic.Uint64
	told    uint64 // drops told so far; the sending goroutine's
}

type queued struct {
	msg    string
	pri    journal.Priority
	fields map[string]string
	// failed gets the error of a send journald refused (its socket gone).
	failed func(error)
	// flushed, when set, marks a Flush: closed once everything before
	// it was sent.
	flushed chan struct{}
}

var droppedTotal = prometheus.NewCounter(prometheus.CounterOpts{
	Namespace: "nodehealthd", Subsystem: "journal", Name: "entries_dropped_total",
	Help: "Log and finding entries dropped because journald did not read its socket and the queue for it was full.",
})

// Collectors are the package's series, for the daemon's registry.
func Collectors() []prometheus.Collector { return []prometheus.Collector{droppedTotal} }

// NewQueue starts a queue of size entries sending through send.
func NewQueue(send Sender, size int) *Queue {
	q := &Queue{send: send, ch: make(chan queued, size)}
	go q.run()
	return q
}

// put queues an entry without ever waiting.
func (q *Queue) put(msg string, pri journal.Priority, fields map[string]string, failed func(error)) {
	select {
	case q.ch <- queued{msg: msg, pri: pri, fields: fields, failed: failed}:
	default:
		q.dropped.Add(1)
		droppedTotal.Inc()
	}
}

func (q *Queue) run() {
	for e := range q.ch {
		if e.flushed != nil {
			close(e.flushed)
			continue
		}
		err := q.send(e.msg, e.pri, e.fields)
		if err != nil {
			if e.failed != nil {
				e.failed(err)
			}
			continue
		}
		if n := q.dropped.Load() - q.told; n > 0 {
			q.told += n
			_ = q.send(strconv.FormatUint(n, 10)+" journal entries of nodehealthd were dropped: journald did not read its socket "+
				"(nodehealthd_journal_entries_dropped_total counts them)",
				journal.PriWarning, map[string]string{"SYSLOG_IDENTIFIER": Identifier, "DROPPED": strconv.FormatUint(n, 10)})
		}
	}
}

// Flush waits until every entry queued before it was sent, or d passed,
// and reports which.
func (q *Queue) Flush(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	done := make(chan struct{})
	select {
	case q.ch <- queued{flushed: done}:
	case <-t.C:
		return false
	}
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// std is the daemon's queue to journald, shared by its logger and its
// findings so that the two keep their order; it starts on first use.
var (
	stdOnce sync.Once
	stdQ    atomic.Pointer[Queue]
)

func std() *Queue {
	stdOnce.Do(func() { stdQ.Store(NewQueue(journal.Send, QueueSize)) })
	return stdQ.Load()
}

// Flush waits up to d for the daemon's queued journal entries to be sent,
// at exit; it returns at once when nothing was written to the journal.
func Flush(d time.Duration) bool {
	if q := stdQ.Load(); q != nil {
		return q.Flush(d)
	}
	return true
}
