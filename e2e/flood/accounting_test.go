package flood

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// distinct is a failing disk logging a new block number on every line: a
// flood of findings that coalescing cannot fold, each a finding of its own.
var distinct = []match{{func(i int) string {
	return fmt.Sprintf("Buffer I/O error on dev nvme1n1, logical block %d, lost async page write", i)
}, []string{"IOError"}}}

// TestFloodAccounting floods the daemon with each kind of flood, smaller
// than the benchmark's, and checks that every matching line is accounted
// for as a finding or a repeat of one, and that every committed message is
// one of the flood's (the source reuses the memory of processed lines:
// a finding must not keep any of it).
func TestFloodAccounting(t *testing.T) {
	for _, c := range []struct {
		name string
		f    flood
		// coalesced: identical Warnings must be folded, not each a finding.
		coalesced bool
	}{
		{"varied one in 100", flood{lines: 20000, every: 100, matches: varied}, false},
		{"identical every line", everyLine(20000), true},
		{"distinct every line", flood{lines: 5000, every: 1, matches: distinct}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, strings.ReplaceAll(c.name, " ", "-"), c.f)
			if r.accounting != nil {
				t.Fatal(r.accounting)
			}
			checkMessages(t, r)
			if c.coalesced {
				for reason, n := range r.want {
					if r.findings[reason] >= n {
						t.Errorf("%s: %d findings for %d identical lines: not coalesced", reason, r.findings[reason], n)
					}
				}
			}
		})
	}
}

// TestFloodUnderTightMemoryLimit runs the daemon with a soft memory limit
// far below what it would use (GOMEMLIMIT; the unit's MemoryHigh= and
// MemoryMax= need a systemd that this test environment does not have, see
// docs/performance.md): the garbage collector works harder, and the daemon
// must neither fail nor lose a finding.
func TestFloodUnderTightMemoryLimit(t *testing.T) {
	r := run(t, "tight-memory", flood{lines: 100000, every: 50, matches: varied}, "GOMEMLIMIT=8MiB")
	if r.accounting != nil {
		t.Fatal(r.accounting)
	}
	checkMessages(t, r)
	t.Logf("peak RSS %.1f MiB under GOMEMLIMIT=8MiB", float64(r.hwm)/(1<<20))
}

// checkMessages checks that every finding in the state file carries a
// message of the flood's matching lines for its reason.
func checkMessages(t *testing.T, r result) {
	t.Helper()
	st, err := state.Read(r.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	fs := append([]finding.Finding(nil), st.Recent...)
	fs = append(fs, st.Active...)
	for _, c := range st.Coalescing {
		fs = append(fs, c.Finding)
	}
	if len(fs) == 0 {
		t.Fatal("no findings in the state file")
	}
	for _, f := range fs {
		ok := false
		for _, m := range r.msgs[f.Reason] {
			if f.Message != "" && strings.Contains(m, f.Message) {
				ok = true
				break
			}
		}
		if !ok {
			t.Errorf("finding %d %s has a message no matching line had: %q", f.ID, f.Reason, f.Message)
		}
	}
}
