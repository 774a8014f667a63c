package outqueue

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// A pipe whose reader stops (a container's log collector behind a stalled
// journald) fills after 64 KiB, and a write to it blocks. Writes through
// the queue never do: what does not fit is dropped and counted, and once
// the reader goes on, every line queued arrives whole and in order, and one
// line tells how many were dropped.
func TestStalledPipeBlocksNoWriter(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	out := Writer("test-pipe", w, TellOn(w, "test-pipe"))
	q := out.(*writer).q
	before := counter(t, "test-pipe")

	const lines = 20000 // 2 MB: the pipe and the queue hold a fraction
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range lines {
			fmt.Fprintf(out, "line %d %s\n", i, strings.Repeat("x", 90))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a writer waited for a pipe nobody reads")
	}
	dropped := q.Dropped()
	if dropped == 0 {
		t.Fatal("nothing dropped: the pipe never filled, and the test proves nothing")
	}
	if got := counter(t, "test-pipe") - before; got != float64(dropped) {
		t.Errorf("nodehealthd_output_dropped_total{output=test-pipe} rose by %v, want %d", got, dropped)
	}

	// The reader goes on.
	received := make(chan []string)
	go func() {
		var got []string
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			got = append(got, sc.Text())
		}
		received <- got
	}()
	if !q.Flush(10 * time.Second) {
		t.Fatal("not flushed once the pipe is read")
	}
	w.Close()
	got := <-received
	last, told, arrived := -1, 0, 0
	for _, l := range got {
		var i, n int
		switch {
		case strings.HasPrefix(l, "nodehealthd: "):
			if _, err := fmt.Sscanf(l, "nodehealthd: %d lines of output dropped", &n); err != nil {
				t.Fatalf("notice %q: %v", l, err)
			}
			told += n
		case strings.HasPrefix(l, "line "):
			if _, err := fmt.Sscanf(l, "line %d", &i); err != nil || i <= last || !strings.HasSuffix(l, strings.Repeat("x", 90)) {
				t.Fatalf("line %q after line %d: torn, repeated or out of order", l, last)
			}
			last = i
			arrived++
		default:
			t.Fatalf("unexpected line %q", l)
		}
	}
	if told != int(dropped) {
		t.Errorf("notices tell %d dropped, want %d", told, dropped)
	}
	if arrived != lines-int(dropped) {
		t.Errorf("%d lines arrived, want %d written - %d dropped", arrived, lines, dropped)
	}
}

// A write the output refuses is not a drop and tells nothing, but is
// counted as an error; Flush
// returns in time even when the output never takes a write.
func TestRefusedWritesAndStuckFlush(t *testing.T) {
	var told []uint64
	errsBefore := errCount(t, "test-refused")
	q := New("test-refused", 4, func(n uint64) error { told = append(told, n); return nil })
	for range 3 {
		q.Put(func() error { return os.ErrClosed })
	}
	if !q.Flush(5*time.Second) || q.Dropped() != 0 || len(told) != 0 {
		t.Fatalf("flushed, dropped %d, told %v: want no drops and nothing told", q.Dropped(), told)
	}
	if n := errCount(t, "test-refused") - errsBefore; n != 3 {
		t.Errorf("nodehealthd_output_errors_total rose by %v, want 3", n)
	}

	stuck := New("test-stuck", 1, nil)
	release := make(chan struct{})
	defer close(release)
	stuck.Put(func() error { <-release; return nil })
	start := time.Now()
	if stuck.Flush(200 * time.Millisecond) {
		t.Fatal("flushed past a write that never returns")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Flush(200ms) took %v", d)
	}
}

func counter(t *testing.T, output string) float64 { return value(t, droppedTotal, output) }

func errCount(t *testing.T, output string) float64 { return value(t, errorsTotal, output) }

func value(t *testing.T, v *prometheus.CounterVec, output string) float64 {
	t.Helper()
	var m dto.Metric
	if err := v.WithLabelValues(output).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
