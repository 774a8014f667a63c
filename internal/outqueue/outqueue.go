// Package outqueue writes to outputs whose reader can stall — journald's
// socket, the pipe to a container's log collector — from a goroutine of
// their own. journald reads its socket in the loop that also writes to
// disk, so on a hung or full disk, or when it is stopped, a write to it (or
// to a pipe that ends in it) blocks until it reads again. Written from the
// pipeline, or from any goroutine that logs, that would stop detection and
// publishing on the very node whose disk is the problem to report. Writes
// wait here instead, in order, at most Size of them; what does not fit is
// dropped, counted in nodehealthd_output_dropped_total, and told on the
// output once it takes writes again.
package outqueue

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Size is how many writes wait for an output whose reader stalled. Writes
// are a log line or a finding (messages are bounded), so a full queue
// holds a few hundred KiB; it is empty while the reader keeps up.
const Size = 512

var (
	droppedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "nodehealthd", Name: "output_dropped_total",
		Help: "Log lines and finding entries dropped because the reader of an output stalled while Size writes waited for it, by output.",
	}, []string{"output"})
	errorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "nodehealthd", Name: "output_errors_total",
		Help: "Writes an output refused (journald's socket gone, a closed pipe), by output.",
	}, []string{"output"})
)

// Collectors are the package's series, for the daemon's registry.
func Collectors() []prometheus.Collector { return []prometheus.Collector{droppedTotal, errorsTotal} }

// Queue runs the writes to one output in order.
type Queue struct {
	ch      chan item
	dropped atomic.Uint64
	counter prometheus.Counter
	errors  prometheus.Counter
	// tell writes the notice of n dropped writes; told is how many were
	// told so far. Both belong to the queue's goroutine.
	tell func(n uint64) error
	told uint64
}

type item struct {
	write func() error
	// flushed, when set, marks a Flush: closed once everything queued
	// before it was written.
	flushed chan struct{}
}

var (
	mu  sync.Mutex
	all []*Queue
)

// New starts a queue of size writes for the output name (the label of
// nodehealthd_output_dropped_total and _errors_total). After drops, tell is
// called with their number once a write succeeds again.
func New(name string, size int, tell func(n uint64) error) *Queue {
	q := &Queue{ch: make(chan item, size), counter: droppedTotal.WithLabelValues(name),
		errors: errorsTotal.WithLabelValues(name), tell: tell}
	mu.Lock()
	all = append(all, q)
	mu.Unlock()
	go q.run()
	return q
}

// Put queues write without ever waiting; a full queue drops it. write's
// error means the output refused it (not that it was slow): it is counted
// in nodehealthd_output_errors_total, write may do more with it (the
// journal's falls back to stderr), and drops are told only after a write
// that succeeded.
func (q *Queue) Put(write func() error) {
	select {
	case q.ch <- item{write: write}:
	default:
		q.dropped.Add(1)
		q.counter.Inc()
	}
}

// Dropped is how many writes were dropped.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

func (q *Queue) run() {
	for it := range q.ch {
		if it.flushed != nil {
			close(it.flushed)
			continue
		}
		if it.write() != nil {
			q.errors.Inc()
			continue
		}
		if n := q.dropped.Load() - q.told; n > 0 && q.tell != nil {
			q.told += n
			_ = q.tell(n)
		}
	}
}

// Flush waits until every write queued before it was done, or d passed,
// and reports which.
func (q *Queue) Flush(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	done := make(chan struct{})
	select {
	case q.ch <- item{flushed: done}:
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

// FlushAll flushes every queue of the process, within d in all, at exit.
func FlushAll(d time.Duration) bool {
	mu.Lock()
	qs := append([]*Queue(nil), all...)
	mu.Unlock()
	deadline := time.Now().Add(d)
	ok := true
	for _, q := range qs {
		ok = q.Flush(time.Until(deadline)) && ok
	}
	return ok
}

// Writer returns an io.Writer that queues each Write, whole, for w (text
// output: a log handler or a printer writes a line at a time). Write
// never waits and always reports success. tell says how many writes were
// dropped, from the queue's goroutine (the only one that writes w); where
// a line of its own would break w's format (JSON lines), it tells
// elsewhere.
func Writer(name string, w io.Writer, tell func(n uint64) error) io.Writer {
	return &writer{w: w, q: New(name, Size, tell)}
}

// TellOn returns a tell for Writer that writes one line on w.
func TellOn(w io.Writer, name string) func(n uint64) error {
	return func(n uint64) error {
		_, err := fmt.Fprintf(w, "nodehealthd: %d lines of output dropped: the reader of %s did not keep up (nodehealthd_output_dropped_total)\n", n, name)
		return err
	}
}

type writer struct {
	w io.Writer
	q *Queue
}

func (w *writer) Write(p []byte) (int, error) {
	b := append([]byte(nil), p...) // the caller reuses p
	w.q.Put(func() error {
		_, err := w.w.Write(b)
		return err
	})
	return len(p), nil
}
