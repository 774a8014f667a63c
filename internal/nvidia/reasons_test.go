package nvidia

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
	"github.com/nodehealthd/nodehealthd/internal/rules"
)

// TestReasonsDeclared: every NVML reason is declared under AcceleratedHardwareReady;
// the polled ones with the poll's default period, the others (XIDs, NVML
// outages) as raised when they happen; and an XID reason with the
// condition and severity of the catalogue rule that builds it.
func TestReasonsDeclared(t *testing.T) {
	declared := reason.Of(Source)
	if len(declared) == 0 {
		t.Fatal("no reason declared for NVML")
	}
	interval := New(Options{Log: testLogger(t), Status: &StatusBoard{}}).o.Interval
	for _, name := range declared {
		in, _ := reason.Lookup(name)
		if in.Condition != finding.AcceleratedHardwareReady {
			t.Errorf("%s: condition %s", name, in.Condition)
		}
		switch name {
		case ReasonXIDErrorTemplate, ReasonXIDWarningTemplate, ReasonNVMLUnavailable:
			// Raised as events arrive, not by the poll.
			if in.Period != 0 {
				t.Errorf("%s: period %v for a reason that is not polled", name, in.Period)
			}
		default:
			if in.Period != interval {
				t.Errorf("%s: period %v, but the poll runs every %v", name, in.Period, interval)
			}
		}
	}
	cat, err := rules.Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cat.Rules {
		if !slices.Contains(xidRules, r.EffectiveName()) {
			continue
		}
		if in, _ := reason.Lookup(r.Reason); in.Name != r.Reason || string(in.Severity) != r.Severity || in.Condition != r.Condition {
			t.Errorf("rule %s builds %s as %s/%s, declared as %s %s/%s", r.Name, r.Reason, r.Condition, r.Severity, in.Name, in.Condition, in.Severity)
		}
	}
}

func TestNVMLUnavailableMatchesDescription(t *testing.T) {
	d := New(Options{Log: testLogger(t), Status: &StatusBoard{}})
	rec := &collector{}
	d.raiseUnavailable(rec, time.Now(), "test")
	got := only(rec.raised(), ReasonNVMLUnavailable)
	if len(got) != 1 {
		t.Fatalf("want one %s, got %+v", ReasonNVMLUnavailable, rec.raised())
	}
	wantDescribed(t, got[0])
}

// wantDescribed fails when a raised finding's condition or severity is not
// what its declaration says operators should expect by default.
func wantDescribed(t *testing.T, f finding.Finding) {
	t.Helper()
	in, ok := reason.Lookup(f.Reason)
	if !ok || in.Detector != Source {
		t.Fatalf("%s is not described as an NVML reason (got %+v)", f.Reason, in)
	}
	if strings.Contains(in.Name, "${") {
		return // XID severity follows the fatal set and config, not a constant
	}
	if in.Severity != f.Severity || in.Condition != f.Condition {
		t.Fatalf("%s raised as %s/%s, described as %s/%s", f.Reason, f.Condition, f.Severity, in.Condition, in.Severity)
	}
}
