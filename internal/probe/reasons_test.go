package probe

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/detector"
)

// TestProbeReasonsAreDescribed keeps the registry that config validation
// and docs/reasons.md read in step with the probes: every reason a probe
// declares is described under that probe with its default period, and
// every reason described for a probe is one the probe declares.
func TestProbeReasonsAreDescribed(t *testing.T) {
	// Factories decide on host tags and, for Neuron, on the PCI bus; a
	// Neuron fixture built with each tag builds every probe at least once.
	root := neuronFixture(t, 2).root
	reasons := map[string][]string{}
	periods := map[string]string{}
	for _, tag := range []string{"", "eks-auto", "hybrid", "ubuntu", "bottlerocket"} {
		env, _, _ := netTestEnv(t, root, tag)
		probes, err := Build(env, nil)
		if err != nil {
			t.Fatalf("tag %q: %v", tag, err)
		}
		for _, p := range probes {
			for _, r := range p.Reasons() {
				if !slices.Contains(reasons[p.Name()], r) {
					reasons[p.Name()] = append(reasons[p.Name()], r)
				}
			}
			periods[p.Name()] = formatPeriod(p.Period())
		}
	}
	for _, name := range Names() {
		if _, ok := reasons[name]; !ok {
			t.Errorf("probe %s was built on none of the test hosts: give this test a host it applies to", name)
		}
	}
	described := map[string]detector.ReasonInfo{}
	for _, in := range detector.Reasons() {
		described[in.Reason] = in
	}
	for name, rs := range reasons {
		for _, r := range rs {
			in, ok := described[r]
			switch {
			case !ok:
				t.Errorf("probe %s reports %s, which no detector.Describe call describes", name, r)
			case in.Detector != "probe:"+name:
				t.Errorf("%s is described for %s, reported by probe %s", r, in.Detector, name)
			case in.Period != periods[name]:
				t.Errorf("%s is described with period %q, probe %s runs every %s by default", r, in.Period, name, periods[name])
			}
		}
	}
	for _, in := range described {
		name, ok := strings.CutPrefix(in.Detector, "probe:")
		if ok && !slices.Contains(reasons[name], in.Reason) {
			t.Errorf("%s is described for %s, which does not report it (registered probes: %v)", in.Reason, in.Detector, Names())
		}
	}
}

// wantDescribed fails when a result's condition or severity is not what
// the probe's description tells operators; the check helpers call it on
// every result the probe tests produce.
func wantDescribed(t testing.TB, probe string, r Result) {
	t.Helper()
	in, ok := detector.Lookup(r.Reason)
	if !ok || in.Detector != "probe:"+probe {
		t.Errorf("%s reported %s, which is not described for it (found %+v)", probe, r.Reason, in)
		return
	}
	if in.Condition != r.Condition || in.Severity != r.Severity {
		t.Errorf("%s reported %s as %s/%s, described as %s/%s", probe, r.Reason, r.Condition, r.Severity, in.Condition, in.Severity)
	}
}

func TestFormatPeriod(t *testing.T) {
	for in, want := range map[string]string{"5m0s": "5m", "1h0m0s": "1h", "1m30s": "1m30s", "10s": "10s", "1h30m0s": "1h30m"} {
		d, _ := time.ParseDuration(in)
		if got := formatPeriod(d); got != want {
			t.Errorf("formatPeriod(%s) = %s, want %s", in, got, want)
		}
	}
}
