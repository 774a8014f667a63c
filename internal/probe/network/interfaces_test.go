package network

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

// Flags as a healthy host shows them in /sys/class/net/<if>/flags.
const (
	netLoFlags   = "0x9"    // UP|LOOPBACK
	netEthUp     = "0x1003" // UP|BROADCAST|MULTICAST
	netEthDown   = "0x1002" // BROADCAST|MULTICAST
	netIfbFlags  = "0x82"   // BROADCAST|NOARP: no multicast
	netWgFlags   = "0x91"   // UP|POINTOPOINT|NOARP
	netMACPrefix = "02:fc:00:00:00:"
)

// netIface writes one interface into a sysfs fixture.
func netIface(t *testing.T, root, name, flags, oper string) {
	t.Helper()
	dir := "sys/class/net/" + name
	probetest.At(t, root).Write(dir+"/flags", flags+"\n")
	probetest.At(t, root).Write(dir+"/operstate", oper+"\n")
	probetest.At(t, root).Write(dir+"/address", fmt.Sprintf("%s%02x\n", netMACPrefix, len(name)))
}

func netHealthyIfaces(t *testing.T) string {
	root := t.TempDir()
	netIface(t, root, "lo", netLoFlags, "unknown")
	netIface(t, root, "eth0", netEthUp, "up")
	netIface(t, root, "eth1", netEthUp, "up")
	// bonding_masters is a file in /sys/class/net, not an interface.
	probetest.At(t, root).Write("sys/class/net/bonding_masters", "\n")
	return root
}

func TestNetInterfaceNotUpNeedsTwoObservations(t *testing.T) {
	root := netHealthyIfaces(t)
	rig, clk, _ := probetest.At(t, root).Rig("interfaces", "")
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("healthy host: %v", probetest.Reasons(res))
	}
	netIface(t, root, "eth1", netEthDown, "down")
	clk.Add(5 * time.Minute)
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("one down observation must not report: %v", probetest.Reasons(res))
	}
	clk.Add(5 * time.Minute)
	res := rig.Check()
	r := probetest.Find(res, "InterfaceNotUp", "eth1")
	if r == nil || len(res) != 1 {
		t.Fatalf("want InterfaceNotUp eth1, got %v", probetest.Reasons(res))
	}
	if r.Severity != "Fatal" || r.Message != `Interface Name: "eth1", MAC: "02:fc:00:00:00:04" is not up` {
		t.Fatalf("result: %+v", r)
	}
	rig.Recovers("InterfaceNotUp", "eth1", func() { netIface(t, root, "eth1", netEthUp, "up") }, func() { clk.Add(5 * time.Minute) })
}

func TestNetInterfaceBlipDoesNotReport(t *testing.T) {
	root := netHealthyIfaces(t)
	rig, clk, _ := probetest.At(t, root).Rig("interfaces", "")
	for i, st := range []string{netEthUp, netEthDown, netEthUp, netEthDown, netEthUp} {
		netIface(t, root, "eth1", st, "up")
		if res := rig.Check(); len(res) != 0 {
			t.Fatalf("check %d: alternating state reported %v", i, probetest.Reasons(res))
		}
		clk.Add(5 * time.Minute)
	}
}

func TestNetInterfaceStalePreviousObservationDoesNotConfirm(t *testing.T) {
	root := netHealthyIfaces(t)
	netIface(t, root, "eth1", netEthDown, "down")
	rig, clk, _ := probetest.At(t, root).Rig("interfaces", "")
	rig.Check()
	clk.Add(11 * time.Minute) // past the 10-minute consistency window
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("stale observation confirmed: %v", probetest.Reasons(res))
	}
	clk.Add(5 * time.Minute)
	if res := rig.Check(); probetest.Find(res, "InterfaceNotUp", "eth1") == nil {
		t.Fatalf("fresh pair of observations must report: %v", probetest.Reasons(res))
	}
}

func TestNetInterfaceNotRunning(t *testing.T) {
	root := netHealthyIfaces(t)
	// Up but without carrier: sysfs flags never carry IFF_RUNNING, so the
	// probe must derive it from operstate.
	netIface(t, root, "eth1", netEthUp, "down")
	rig, clk, _ := probetest.At(t, root).Rig("interfaces", "")
	rig.Check()
	clk.Add(5 * time.Minute)
	res := rig.Check()
	r := probetest.Find(res, "InterfaceNotRunning", "eth1")
	if r == nil || len(res) != 1 {
		t.Fatalf("want only InterfaceNotRunning eth1, got %v", probetest.Reasons(res))
	}
	if !strings.Contains(r.Message, `Interface Name: "eth1"`) || !strings.Contains(r.Message, "is not running") || strings.Contains(r.Message, "is not up") {
		t.Fatalf("message must say not running (B10 quirk 6): %q", r.Message)
	}
	rig.Recovers("InterfaceNotRunning", "eth1", func() { netIface(t, root, "eth1", netEthUp, "up") }, func() { clk.Add(5 * time.Minute) })
}

func TestNetInterfaceRunningStates(t *testing.T) {
	// operstate "unknown" is what lo and many virtual devices report; the
	// kernel counts it as running (netif_oper_up).
	for _, tc := range []struct {
		oper string
		want bool
	}{{"up", false}, {"unknown", false}, {"down", true}, {"lowerlayerdown", true}, {"dormant", true}} {
		root := netHealthyIfaces(t)
		netIface(t, root, "veth1", netEthUp, tc.oper)
		rig, clk, _ := probetest.At(t, root).Rig("interfaces", "")
		rig.Check()
		clk.Add(time.Minute)
		got := probetest.Find(rig.Check(), "InterfaceNotRunning", "veth1") != nil
		if got != tc.want {
			t.Errorf("operstate %s: reported=%v, want %v", tc.oper, got, tc.want)
		}
	}
}

func TestNetInterfaceReportsEveryOffender(t *testing.T) {
	root := netHealthyIfaces(t)
	netIface(t, root, "eth1", netEthDown, "down")
	netIface(t, root, "eth2", netEthDown, "down")
	netIface(t, root, "eth3", netEthUp, "down")
	rig, clk, _ := probetest.At(t, root).Rig("interfaces", "")
	rig.Check()
	clk.Add(5 * time.Minute)
	got := strings.Join(probetest.Reasons(rig.Check()), " ")
	if got != "InterfaceNotUp/eth1 InterfaceNotUp/eth2 InterfaceNotRunning/eth3" {
		t.Fatalf("want all three offenders (B10 quirk 6), got %q", got)
	}
}

func TestNetInterfaceSkipsExpectedDown(t *testing.T) {
	root := netHealthyIfaces(t)
	netIface(t, root, "docker0", netEthUp, "down") // no containers: no carrier
	netIface(t, root, "ib0", netEthDown, "down")   // default exclusion
	netIface(t, root, "ibp1s0f1", netEthDown, "down")
	netIface(t, root, "ifb0", netIfbFlags, "down")  // no multicast
	netIface(t, root, "wg0", netWgFlags, "unknown") // point-to-point
	rig, clk, _ := probetest.At(t, root).Rig("interfaces", "")
	for range 3 {
		if res := rig.Check(); len(res) != 0 {
			t.Fatalf("expected-down interfaces reported: %v", probetest.Reasons(res))
		}
		clk.Add(5 * time.Minute)
	}
}

func TestNetInterfaceExclusionConfig(t *testing.T) {
	root := netHealthyIfaces(t)
	netIface(t, root, "ib0", netEthDown, "down")
	netIface(t, root, "eth9", netEthDown, "down")
	netIface(t, root, "docker0", netEthDown, "down")
	for _, tc := range []struct {
		section, want string
	}{
		{"", "InterfaceNotUp/eth9"},
		// A list replaces the defaults.
		{"excludedInterfaceNameRegexps: ['^eth9$']", "InterfaceNotUp/ib0"},
		// An explicitly empty list disables exclusions; docker* stays
		// skipped as in NMA.
		{"excludedInterfaceNameRegexps: []", "InterfaceNotUp/eth9 InterfaceNotUp/ib0"},
	} {
		rig, clk, _ := probetest.At(t, root).Rig("interfaces", tc.section)
		rig.Check()
		clk.Add(5 * time.Minute)
		if got := strings.Join(probetest.Reasons(rig.Check()), " "); got != tc.want {
			t.Errorf("config %q: got %q, want %q", tc.section, got, tc.want)
		}
	}
	env, _, _ := probetest.At(t, root).Fake()
	for _, bad := range []string{"excludedInterfaceNameRegexps: ['(']", "excludedInterfaceNameRegexps: ['']", "excludedInterfaceRegexps: []"} {
		if _, err := probetest.BuildErr(t, env, "interfaces", bad); err == nil {
			t.Errorf("config %q accepted", bad)
		}
	}
	if p := probetest.Build(t, env, "interfaces", "enabled: false"); p != nil {
		t.Error("enabled: false still built the probe")
	}
}

func TestNetMissingLoopbackInterface(t *testing.T) {
	root := netHealthyIfaces(t)
	if err := os.RemoveAll(filepath.Join(root, "sys/class/net/lo")); err != nil {
		t.Fatal(err)
	}
	rig, clk, _ := probetest.At(t, root).Rig("interfaces", "")
	// No consistency requirement: a node without lo is broken at once.
	res := rig.Check()
	if r := probetest.Find(res, "MissingLoopbackInterface", ""); r == nil || r.Severity != "Fatal" || len(res) != 1 {
		t.Fatalf("want MissingLoopbackInterface, got %v", probetest.Reasons(res))
	}
	rig.Recovers("MissingLoopbackInterface", "", func() { netIface(t, root, "lo", netLoFlags, "unknown") }, func() { clk.Add(5 * time.Minute) })
}

func TestNetLoopbackDownIsNotUp(t *testing.T) {
	root := netHealthyIfaces(t)
	netIface(t, root, "lo", "0x8", "down") // present but down
	rig, clk, _ := probetest.At(t, root).Rig("interfaces", "")
	if res := rig.Check(); probetest.Find(res, "MissingLoopbackInterface", "") != nil {
		t.Fatal("a down lo is not missing")
	}
	clk.Add(5 * time.Minute)
	if res := rig.Check(); probetest.Find(res, "InterfaceNotUp", "lo") == nil {
		t.Fatalf("down lo: %v", probetest.Reasons(res))
	}
}

func TestNetInterfacesRealSysfs(t *testing.T) {
	// The real /sys/class/net of whatever runs the tests: the probe must
	// read it without error and find a loopback interface.
	if _, err := os.Stat("/sys/class/net/lo"); err != nil {
		t.Skip("no /sys/class/net/lo here")
	}
	env, _, _ := probetest.At(t, "/").Fake()
	rig := probetest.NewRig(t, probetest.Build(t, env, "interfaces", ""), env)
	if res := rig.Check(); probetest.Find(res, "MissingLoopbackInterface", "") != nil {
		t.Fatalf("real sysfs: %v", probetest.Reasons(res))
	}
}
