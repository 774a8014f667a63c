package probe

import (
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// TestProbeReasonsDeclaredWithPeriod: every probe declares at least one
// reason, every reason declared for a probe names a registered one, and
// its declared period is the probe's default (what docs/reasons.md says).
func TestProbeReasonsDeclaredWithPeriod(t *testing.T) {
	// Factories decide on host tags and, for Neuron, on the PCI bus; a
	// Neuron fixture built with each tag builds every probe at least once.
	root := neuronFixture(t, 2).root
	periods := map[string]time.Duration{}
	for _, tag := range []string{"", "eks-auto", "hybrid", "ubuntu", "bottlerocket"} {
		env, _, _ := netTestEnv(t, root, tag)
		probes, err := Build(env, nil)
		if err != nil {
			t.Fatalf("tag %q: %v", tag, err)
		}
		for _, p := range probes {
			periods[p.Name()] = p.Period()
		}
	}
	for _, name := range Names() {
		if _, ok := periods[name]; !ok {
			t.Errorf("probe %s was built on none of the test hosts: give this test a host it applies to", name)
		}
		if len(reason.Of("probe:"+name)) == 0 {
			t.Errorf("probe %s declares no reason", name)
		}
	}
	for _, r := range reason.All() {
		name, ok := strings.CutPrefix(r.Detector, "probe:")
		if !ok {
			continue
		}
		switch period, built := periods[name]; {
		case !built:
			t.Errorf("%s is declared for %s, which is not a registered probe (registered: %v)", r.Name, r.Detector, Names())
		case r.Period != period:
			t.Errorf("%s is declared with period %v, probe %s runs every %v by default", r.Name, r.Period, name, period)
		}
	}
}

// wantDescribed fails when a result's reason is not declared for the probe
// that reported it, or its condition or severity is not the declaration's;
// the check helpers call it on every result the probe tests produce.
func wantDescribed(t testing.TB, probe string, r Result) {
	t.Helper()
	in, ok := reason.Lookup(r.Reason)
	if !ok || in.Detector != "probe:"+probe {
		t.Errorf("%s reported %s, which is not declared for it (found %+v)", probe, r.Reason, in)
		return
	}
	if in.Condition != r.Condition || in.Severity != r.Severity {
		t.Errorf("%s reported %s as %s/%s, declared as %s/%s", probe, r.Reason, r.Condition, r.Severity, in.Condition, in.Severity)
	}
}
