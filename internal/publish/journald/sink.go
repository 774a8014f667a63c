package journald

import (
	"strconv"
	"sync"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/nodehealthd/nodehealthd/internal/outqueue"
)

// sink sends entries from a queue (internal/outqueue), so that a journald
// that does not read its socket stalls no caller.
type sink struct {
	q    *outqueue.Queue
	send Sender
}

func newSink(send Sender, size int) *sink {
	return &sink{send: send, q: outqueue.New("journal", size, func(n uint64) error {
		return send(strconv.FormatUint(n, 10)+" journal entries of nodehealthd were dropped: journald did not read its socket "+
			"(nodehealthd_output_dropped_total)", journal.PriWarning,
			map[string]string{"SYSLOG_IDENTIFIER": Identifier, "DROPPED": strconv.FormatUint(n, 10)})
	})}
}

// put queues an entry; failed gets the error of a send journald refused
// (its socket gone).
func (s *sink) put(msg string, pri journal.Priority, fields map[string]string, failed func(error)) {
	s.q.Put(func() error {
		err := s.send(msg, pri, fields)
		if err != nil && failed != nil {
			failed(err)
		}
		return err
	})
}

// std is the daemon's sink, shared by its logger and its findings so that
// the two keep their order.
var std = sync.OnceValue(func() *sink { return newSink(journal.Send, outqueue.Size) })
