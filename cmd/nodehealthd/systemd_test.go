package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/finding"
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
// a queue unless stdout is a terminal.
func TestConsoleOutputToAStalledPipeDoesNotBlock(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	o := options{output: "text"}
	e := newEnv(context.Background(), slog.New(slog.DiscardHandler), &o, &config.Config{}, w)
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
}
