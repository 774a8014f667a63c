package main

import (
	"fmt"
	"syscall"
	"testing"
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
