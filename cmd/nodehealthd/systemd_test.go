package main

import (
	"flag"
	"fmt"
	"syscall"
	"testing"
)

func systemdSubsystem(t *testing.T) subsystem {
	t.Helper()
	for _, s := range subsystems {
		if s.name == "systemd" {
			return s
		}
	}
	t.Fatal("systemd subsystem not registered")
	return subsystem{}
}

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
			fs := flag.NewFlagSet("nodehealthd", flag.ContinueOnError)
			fs.String("o", "text", "")
			fs.String("log-level", "info", "")
			systemdSubsystem(t).flags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if got := fs.Lookup("o").Value.String(); got != tc.want {
				t.Errorf("-o = %q, want %q", got, tc.want)
			}
		})
	}
}
