package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/logging/logtest"
	"github.com/nodehealthd/nodehealthd/internal/outqueue"
	"github.com/nodehealthd/nodehealthd/internal/publish"
)

// Under systemd (stderr is the journal stream) findings are journal
// entries, so printing them on stdout is off unless -o asks for it.
func TestOutputDefaultUnderJournal(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Fstat(2, &st); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, stream string
		args         []string
		want         string
	}{
		{"terminal or pipe", "", nil, "text"},
		{"journal stream of another fd", "1:1", nil, "text"},
		{"journal", fmt.Sprintf("%d:%d", st.Dev, st.Ino), nil, "none"},
		{"journal, explicit -o", fmt.Sprintf("%d:%d", st.Dev, st.Ino), []string{"-o", "json"}, "json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("JOURNAL_STREAM", tc.stream)
			var o options
			if err := newFlagSet(&o).Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := o.resolveOutput(); err != nil {
				t.Fatal(err)
			}
			if o.output != tc.want {
				t.Errorf("-o = %q, want %q", o.output, tc.want)
			}
		})
	}
	o := options{output: "yaml"}
	if err := o.resolveOutput(); err == nil {
		t.Error("-o yaml accepted")
	}
}

// Printed findings go to stdout; in the Bottlerocket host container that
// is a pipe to a log collector that stops reading when journald stalls.
// The pipeline must not wait on it: the console publisher writes through
// a queue unless stdout is a terminal. What it drops is told in the log,
// so that -o json stays JSON lines once the reader goes on.
func TestConsoleOutputToAStalledPipeDoesNotBlock(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	o := options{output: "json"}
	var log logtest.Buffer
	e := newEnv(context.Background(), slog.New(slog.NewTextHandler(&log, nil)), &o, &config.Config{}, w)
	if err := e.setupOutput(); err != nil {
		t.Fatal(err)
	}
	if len(e.opts.Publishers) != 1 {
		t.Fatalf("publishers %v, want the console", e.opts.Publishers)
	}
	p := e.opts.Publishers[0]
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 5000 { // about 100 bytes each: eight times the pipe
			p.Publish(publish.Update{New: []finding.Finding{{ID: uint64(i), Condition: finding.KernelReady, Reason: "SoftLockup",
				Severity: finding.Warning, Message: strings.Repeat("m", 40), Source: "kmsg"}}})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the pipeline waits for a stdout pipe nobody reads")
	}

	// The reader goes on.
	lines := make(chan []string)
	go func() {
		var got []string
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			got = append(got, sc.Text())
		}
		lines <- got
	}()
	// One more finding after the drops, whose write makes the queue tell.
	p.Publish(publish.Update{New: []finding.Finding{{ID: 5000, Condition: finding.KernelReady, Reason: "SoftLockup",
		Severity: finding.Warning, Message: "last", Source: "kmsg"}}})
	if !outqueue.FlushAll(10 * time.Second) {
		t.Fatal("stdout not flushed once read")
	}
	w.Close()
	got := <-lines
	if len(got) == 0 || len(got) > 5000 {
		t.Fatalf("%d lines printed, want some dropped", len(got))
	}
	for _, l := range got {
		if !json.Valid([]byte(l)) {
			t.Fatalf("stdout line %q is not JSON", l)
		}
	}
	if !strings.Contains(log.String(), "printed findings dropped") {
		t.Errorf("the drops are not told in the log:\n%s", log.String())
	}
}
