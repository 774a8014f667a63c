package daemontest

import (
	"os"
	"testing"
	"time"
)

// RequireKmsg skips a test that writes records into this host's /dev/kmsg
// where it cannot.
func RequireKmsg(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to read and write /dev/kmsg")
	}
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		tb.Skipf("/dev/kmsg not writable: %v", err)
	}
	f.Close()
}

// WriteKmsg writes msg into this host's kernel ring at error priority and
// returns when it did.
func WriteKmsg(tb testing.TB, msg string) time.Time {
	tb.Helper()
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	at := time.Now()
	if _, err := f.WriteString("<3>" + msg + "\n"); err != nil {
		tb.Fatal(err)
	}
	return at
}
