// Package daemontest runs the real nodehealthd in end-to-end tests: it
// lays out fixture files, starts and stops the daemon, keeps what it
// prints, waits for what a test expects of it, and reads its /metrics and
// /proc status. The e2e packages share it so that each test says only what
// it checks.
package daemontest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/logging/logtest"
)

// Write writes a fixture file, creating its directory.
func Write(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// WriteBoot writes the boot facts the daemon reads under root (btime in
// /proc/stat, an hour ago, and the boot ID) and returns the boot time.
func WriteBoot(tb testing.TB, root, bootID string) time.Time {
	tb.Helper()
	boot := time.Now().Add(-time.Hour).Truncate(time.Second)
	Write(tb, filepath.Join(root, "proc/stat"), fmt.Sprintf("cpu  1 2 3 4\nbtime %d\n", boot.Unix()))
	Write(tb, filepath.Join(root, "proc/sys/kernel/random/boot_id"), bootID+"\n")
	return boot
}

// Eventually polls cond until it holds and returns how long that took; when
// d passes first, the test fails with what and the last reason cond gave.
func Eventually(tb testing.TB, d time.Duration, what string, cond func() (bool, string)) time.Duration {
	tb.Helper()
	return poll(tb, d, what, cond, nil, nil)
}

// pollEvery is fine enough for the latencies the tests report (tens of
// milliseconds and more) and coarse enough not to load the daemon's machine.
const pollEvery = 10 * time.Millisecond

// poll is Eventually that also gives up when exited closes, with the log.
func poll(tb testing.TB, d time.Duration, what string, cond func() (bool, string), exited <-chan struct{}, log *logtest.Buffer) time.Duration {
	tb.Helper()
	start := time.Now()
	for {
		ok, last := cond()
		if ok {
			return time.Since(start)
		}
		select {
		case <-exited:
			tb.Fatalf("%s: the daemon exited (last: %s); its log:\n%s", what, last, log)
		default:
		}
		if time.Since(start) > d {
			tb.Fatalf("%s: not within %v (last: %s)", what, d, last)
		}
		time.Sleep(pollEvery)
	}
}
