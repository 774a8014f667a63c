package repair_test

import (
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/repair"
	"github.com/nodehealthd/nodehealthd/internal/rules"
)

// TestDefaultEscalationsAreValid: every default escalation turns a Fatal
// catalogue reason EKS reboots for into one of the same condition that
// EKS replaces for, and passes the validation an operator's would.
func TestDefaultEscalationsAreValid(t *testing.T) {
	cat, err := rules.Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	overrides := map[string]policy.Override{}
	for from, to := range repair.DefaultEscalations() {
		if a, ok := repair.ManagedNodeGroup(finding.AcceleratedHardwareReady, from); !ok || a != repair.Reboot {
			t.Errorf("%s: EKS action %q, want Reboot", from, a)
		}
		if a, ok := repair.ManagedNodeGroup(finding.AcceleratedHardwareReady, to); !ok || a != repair.Replace {
			t.Errorf("%s → %s: EKS action %q, want Replace", from, to, a)
		}
		overrides[from] = policy.Override{Escalate: &policy.Escalation{AfterReboots: 1, Reason: to}}
	}
	if len(overrides) == 0 {
		t.Fatal("no default escalations")
	}
	if _, err := rules.Compile(cat, rules.Options{Policy: policy.New(overrides)}); err != nil {
		t.Fatalf("default escalations do not validate against the catalogue: %v", err)
	}
}

func TestManagedNodeGroup(t *testing.T) {
	for _, c := range []struct {
		cond, reason string
		want         repair.Action
		listed       bool
	}{
		{finding.AcceleratedHardwareReady, "NvidiaXID79Error", repair.Replace, true},
		{finding.AcceleratedHardwareReady, "NvidiaXID31Error", repair.Reboot, true},
		{finding.AcceleratedHardwareReady, "NvidiaXID46Error", "", false},
		{finding.AcceleratedHardwareReady, "NvidiaDoubleBitError", "", false},
		{finding.KernelReady, "ForkFailedOutOfPIDs", repair.Replace, true},
	} {
		if a, ok := repair.ManagedNodeGroup(c.cond, c.reason); a != c.want || ok != c.listed {
			t.Errorf("%s/%s = %q %v, want %q %v", c.cond, c.reason, a, ok, c.want, c.listed)
		}
	}
}
