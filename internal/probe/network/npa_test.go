package network

import (
	"errors"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

const netNPAUnit = "aws-network-policy-agent.service"

func netNPARig(t *testing.T, section string) (*probetest.Rig, *probetest.Clock, *netFakeUnits) {
	t.Helper()
	env, clk, _ := probetest.At(t, t.TempDir()).Fake("eks-auto")
	p := probetest.Build(t, env, "network-policy-agent", section).(*netNPA)
	units := &netFakeUnits{st: map[string]netUnitState{netNPAUnit: {ActiveState: "active", SubState: "running", NRestarts: 0}}}
	p.units = units
	return probetest.NewRig(t, p, env), clk, units
}

func TestNetNPAOnlyOnAutoMode(t *testing.T) {
	env, _, _ := probetest.At(t, t.TempDir()).Fake()
	if p := probetest.Build(t, env, "network-policy-agent", ""); p != nil {
		t.Fatal("built without eks-auto")
	}
}

func TestNetNPANotRunning(t *testing.T) {
	rig, clk, units := netNPARig(t, "")
	rig.Check()
	units.st[netNPAUnit] = netUnitState{ActiveState: "failed", SubState: "failed", Result: "exit-code"}
	// Reported once 15 minutes of continuous not-running have passed.
	for _, mins := range []int{0, 5, 10} {
		if res := rig.Check(); len(res) != 0 {
			t.Fatalf("%d min down: %v", mins, probetest.Reasons(res))
		}
		clk.Add(5 * time.Minute)
	}
	res := rig.Check()
	r := probetest.Find(res, "NPANotRunning", "")
	if r == nil || r.Severity != "Fatal" || r.Message != `NPA is not running on this Auto Mode node (SubState="failed", Result="exit-code")` {
		t.Fatalf("15 min down: %+v", res)
	}
	clk.Add(5 * time.Minute)
	if res := rig.Check(); probetest.Find(res, "NPANotRunning", "") == nil {
		t.Fatal("still down must keep reporting")
	}
	rig.Recovers("NPANotRunning", "", func() {
		units.st[netNPAUnit] = netUnitState{ActiveState: "active", SubState: "running"}
	}, func() { clk.Add(5 * time.Minute) })
}

func TestNetNPABriefOutagesDoNotAddUp(t *testing.T) {
	rig, clk, units := netNPARig(t, "")
	for i := range 8 {
		st := "active"
		if i%2 == 0 {
			st = "activating"
		}
		units.st[netNPAUnit] = netUnitState{ActiveState: st}
		if res := rig.Check(); len(res) != 0 {
			t.Fatalf("check %d: %v", i, probetest.Reasons(res))
		}
		clk.Add(5 * time.Minute)
	}
}

func TestNetNPARepeatedlyRestart(t *testing.T) {
	rig, clk, units := netNPARig(t, "")
	// A large count from before the daemon started is history, not a
	// burst of restarts (B10 quirk 9).
	units.st[netNPAUnit] = netUnitState{ActiveState: "active", SubState: "running", NRestarts: 40}
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("baseline reported: %v", probetest.Reasons(res))
	}
	clk.Add(5 * time.Minute)
	units.st[netNPAUnit] = netUnitState{ActiveState: "active", SubState: "running", NRestarts: 44}
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("4 restarts reported: %v", probetest.Reasons(res))
	}
	clk.Add(5 * time.Minute)
	units.st[netNPAUnit] = netUnitState{ActiveState: "active", SubState: "running", Result: "success", NRestarts: 49}
	res := rig.Check()
	r := probetest.Find(res, "NPARepeatedlyRestart", "")
	if r == nil || r.Severity != "Warning" || r.Message != `NPA restarted 5 times in last poll interval (threshold: 5, SubState="running", Result="success")` {
		t.Fatalf("5 restarts: %+v", res)
	}
	rig.Recovers("NPARepeatedlyRestart", "", func() {}, func() { clk.Add(5 * time.Minute) })
	// A manual restart resets NRestarts: a new baseline, not a wrap.
	units.st[netNPAUnit] = netUnitState{ActiveState: "active", NRestarts: 0}
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("counter reset: %v", probetest.Reasons(res))
	}
}

func TestNetNPAConfigAndErrors(t *testing.T) {
	rig, clk, units := netNPARig(t, "notRunningFor: 5m\nrestartThreshold: 2")
	units.st[netNPAUnit] = netUnitState{ActiveState: "inactive"}
	rig.Check()
	clk.Add(5 * time.Minute)
	if res := rig.Check(); probetest.Find(res, "NPANotRunning", "") == nil {
		t.Fatalf("notRunningFor: 5m: %v", probetest.Reasons(res))
	}
	units.err = errors.New("no bus")
	if _, err := rig.P.Check(t.Context(), rig.Env); err == nil {
		t.Fatal("unreadable state must fail the check (skip the cycle)")
	}
}
