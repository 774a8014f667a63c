package nvidia

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// TestReasonsAreDescribed keeps the static metadata (config validation,
// docs/reasons.md) in step with what the package reports: every reason of
// Reasons() is described as an NVML reason, and nothing else is.
func TestReasonsAreDescribed(t *testing.T) {
	var described []string
	for _, in := range detector.Reasons() {
		if in.Detector == Source {
			described = append(described, in.Reason)
		}
	}
	reported := slices.Sorted(slices.Values(Reasons()))
	if !slices.Equal(described, reported) {
		t.Fatalf("described as %s: %v\nReasons(): %v", Source, described, reported)
	}
	interval := New(Options{Log: testLogger(t), Status: &StatusBoard{}}).o.Interval
	for _, reason := range reported {
		in, _ := detector.Lookup(reason)
		if in.Condition != finding.AcceleratedHardwareReady {
			t.Errorf("%s: condition %s", reason, in.Condition)
		}
		switch reason {
		case ReasonXIDErrorTemplate, ReasonXIDWarningTemplate, ReasonNVMLUnavailable:
			// Raised as events arrive, not by the poll.
			if in.Period != "" {
				t.Errorf("%s: period %q for a reason that is not polled", reason, in.Period)
			}
		default:
			if d, err := time.ParseDuration(in.Period); err != nil || d != interval {
				t.Errorf("%s: period %q, but the poll runs every %v", reason, in.Period, interval)
			}
		}
	}
	// XIDs take their default severity from the templates that mirror the
	// kmsg rules.
	for _, tmpl := range defaultTemplates {
		if in, _ := detector.Lookup(tmpl.Reason); in.Severity != tmpl.Severity || in.Condition != tmpl.Condition {
			t.Errorf("%s described as %s/%s, built as %s/%s", tmpl.Reason, in.Condition, in.Severity, tmpl.Condition, tmpl.Severity)
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
// what detector.Describe says operators should expect by default.
func wantDescribed(t *testing.T, f finding.Finding) {
	t.Helper()
	in, ok := detector.Lookup(f.Reason)
	if !ok || in.Detector != Source {
		t.Fatalf("%s is not described as an NVML reason (got %+v)", f.Reason, in)
	}
	if strings.Contains(in.Reason, "${") {
		return // XID severity follows the fatal set and config, not a constant
	}
	if in.Severity != f.Severity || in.Condition != f.Condition {
		t.Fatalf("%s raised as %s/%s, described as %s/%s", f.Reason, f.Condition, f.Severity, in.Condition, in.Severity)
	}
}
