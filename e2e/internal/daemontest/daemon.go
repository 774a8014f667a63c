package daemontest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/e2e/internal/testbin"
	"github.com/nodehealthd/nodehealthd/internal/logging/logtest"
)

// Options are what a test may change about how a daemon runs.
type Options struct {
	// Bin is the nodehealthd to run; by default the one testbin builds.
	Bin string
	// Env is added to the test's environment.
	Env []string
	// Stdout receives each line the daemon prints on stdout (-o json),
	// valid during the call only;
	// without it, stdout goes to the log with stderr.
	Stdout func(line []byte)
	// Log receives the daemon's output. By default the daemon has a log of
	// its own, printed when the test fails; a test that restarts a daemon
	// passes one to keep every run's story in one place, and prints it.
	Log *logtest.Buffer
	// KillAfter is how long Stop waits for the daemon to end before it
	// sends SIGKILL; 10 s by default.
	KillAfter time.Duration
}

// Daemon is one nodehealthd process.
type Daemon struct {
	Log       *logtest.Buffer
	cmd       *exec.Cmd
	exited    chan struct{}
	killAfter time.Duration
	stopped   bool
}

// Start runs nodehealthd with args; the test's end stops it with SIGTERM.
func Start(tb testing.TB, args []string, o Options) *Daemon {
	tb.Helper()
	bin := o.Bin
	if bin == "" {
		bin = filepath.Join(testbin.Build(tb), "nodehealthd")
	}
	d := &Daemon{Log: o.Log, exited: make(chan struct{}), killAfter: o.KillAfter}
	if d.Log == nil {
		d.Log = &logtest.Buffer{}
		d.Log.LogOnFailure(tb, "nodehealthd")
	}
	if d.killAfter == 0 {
		d.killAfter = 10 * time.Second
	}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Env = append(os.Environ(), o.Env...)
	d.cmd.Stdout, d.cmd.Stderr = d.Log, d.Log
	if o.Stdout != nil {
		d.cmd.Stdout = &lineWriter{line: o.Stdout}
	}
	// A test binary that dies must not leave daemons behind.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(d.Log, "---- start %s\n", strings.Join(args, " "))
	if err := d.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	// Wait returns once the output is copied, so that a stopped daemon's
	// log is complete.
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	tb.Cleanup(func() { d.Stop(syscall.SIGTERM) })
	return d
}

// Pid is the daemon's process ID.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Exited is closed once the daemon has ended and its output is read.
func (d *Daemon) Exited() <-chan struct{} { return d.exited }

// Stop sends sig (SIGKILL for a crash) and waits for the daemon to end,
// killing it after the kill timeout. Stopping a stopped daemon does
// nothing.
func (d *Daemon) Stop(sig syscall.Signal) {
	if d.stopped {
		return
	}
	d.stopped = true
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.exited:
	case <-time.After(d.killAfter):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	fmt.Fprintf(d.Log, "---- stopped with %v\n", sig)
}

// Eventually is the package's Eventually that fails at once, with the
// daemon's log, when the daemon exits meanwhile.
func (d *Daemon) Eventually(tb testing.TB, dur time.Duration, what string, cond func() (bool, string)) time.Duration {
	tb.Helper()
	return poll(tb, dur, what, cond, d.exited, d.Log)
}

// MetricsAddr waits for the daemon to say where it serves /metrics.
func (d *Daemon) MetricsAddr(tb testing.TB, dur time.Duration) string {
	tb.Helper()
	var addr string
	d.Eventually(tb, dur, "the metrics endpoint", func() (bool, string) {
		var ok bool
		addr, ok = MetricsAddr(d.Log.String())
		return ok, "not logged"
	})
	return addr
}

// lineWriter hands each complete line to line; the copy goroutine of
// exec is its only writer.
type lineWriter struct {
	line    func([]byte)
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.line(w.partial[:i])
		w.partial = w.partial[i+1:]
	}
}
