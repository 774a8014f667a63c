package network

import (
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

// TestNeedsChecksIsWhatTheProbeTakes holds each probe to its declared
// Needs.Checks (probetest.CheckNeeds).
func TestNeedsChecksIsWhatTheProbeTakes(t *testing.T) {
	ipRulesMissing := func(section string) func(t *testing.T) (probe.Probe, *probe.Env, func()) {
		return func(t *testing.T) (probe.Probe, *probe.Env, func()) {
			rig, root := netIPRulesRig(t, netVPCRouting(), section)
			netInstallVPCCNI(t, root, "aws-node-x7k2p")
			netCheckpoint(t, root, "10.0.1.5", "10.0.2.7", "10.0.1.9")
			return rig.P, rig.Env, nil
		}
	}
	probetest.CheckNeeds(t, []probetest.NeedsCase{
		{Name: "interfaces: an interface down", Build: func(t *testing.T) (probe.Probe, *probe.Env, func()) {
			root := netHealthyIfaces(t)
			netIface(t, root, "eth1", netEthDown, "down")
			env, clk, _ := probetest.At(t, root).Fake()
			return probetest.Build(t, env, "interfaces", ""), env, func() { clk.Add(time.Second) }
		}, WantChecks: 2},
		{Name: "ipamd: not running", Build: func(t *testing.T) (probe.Probe, *probe.Env, func()) {
			root := t.TempDir()
			netInstallVPCCNI(t, root, "aws-node-x7k2p")
			netProc(t, root, 1, "systemd")
			env, clk, _ := probetest.At(t, root).Fake()
			p := probetest.Build(t, env, "ipamd", "inconsistentState: false")
			return p, env, func() { clk.Add(time.Second) }
		}, WantChecks: 3},
		{Name: "ipamd on Auto Mode: unit inactive", Build: func(t *testing.T) (probe.Probe, *probe.Env, func()) {
			env, clk, _ := probetest.At(t, t.TempDir()).Fake("eks-auto")
			p := probetest.Build(t, env, "ipamd", "inconsistentState: false").(*netIPAMD)
			p.units = &netFakeUnits{st: map[string]netUnitState{"ipamd.service": {ActiveState: "inactive"}}}
			return p, env, func() { clk.Add(time.Second) }
		}, WantChecks: 2},
		{Name: "ip-rules: a rule missing", Build: ipRulesMissing(""), WantChecks: 2},
		{Name: "ip-rules: confirmations 3", Build: ipRulesMissing("confirmations: 3"), WantChecks: 3},
	})
}
