package network

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

// netENAHost makes eth0 and eth1 ENA devices and veth0 a veth.
func netENAHost(t *testing.T) string {
	root := t.TempDir()
	for _, ifname := range []string{"eth0", "eth1"} {
		netIface(t, root, ifname, netEthUp, "up")
		probetest.At(t, root).Symlink("sys/class/net/"+ifname+"/device/driver", "../../../../bus/pci/drivers/ena")
	}
	netIface(t, root, "veth0", netEthUp, "up")
	probetest.At(t, root).Symlink("sys/class/net/veth0/device/driver", "../../../../bus/virtio/drivers/virtio_net")
	return root
}

// netEthtool renders "ethtool -S" output with the given allowance counters
// (the others 0), among the per-queue noise the real output has.
func netEthtool(vals map[string]uint64) string {
	var b strings.Builder
	b.WriteString("NIC statistics:\n     tx_timeout: 0\n     suspend: 0\n     queue_0_tx_cnt: 81723\n")
	stats := make([]string, 0, len(netENAStats))
	for s := range netENAStats {
		stats = append(stats, s)
	}
	sort.Strings(stats)
	for _, s := range stats {
		fmt.Fprintf(&b, "     %s: %d\n", s, vals[s])
	}
	b.WriteString("     ena_admin_q_aborted_cmd: 0\n")
	return b.String()
}

func TestNetENAAllowancesFireOnSecondPoll(t *testing.T) {
	// Every allowance reason, each with NMA's burst: a jump just above the
	// bucket fires on the poll after the baseline, a jump equal to the
	// bucket does not (B10 quirk 1: NMA's never fired).
	for stat, decl := range netENAStats {
		reason := decl.Name
		burst := uint64(netENABursts[stat])
		for _, tc := range []struct {
			jump uint64
			want bool
		}{{burst + 1, true}, {burst, false}} {
			root := netENAHost(t)
			rig, clk, fr := probetest.At(t, root).Rig("ena-allowances", "")
			base := map[string]uint64{stat: 5_000_000} // history from before the daemon started
			fr.Set("ethtool -S eth0", netEthtool(base))
			fr.Set("ethtool -S eth1", netEthtool(nil))
			if res := rig.Check(); len(res) != 0 {
				t.Fatalf("%s: baseline poll reported %v", stat, probetest.Reasons(res))
			}
			fr.Set("ethtool -S eth0", netEthtool(map[string]uint64{stat: 5_000_000 + tc.jump}))
			clk.Add(5 * time.Minute)
			res := rig.Check()
			r := probetest.Find(res, reason, "eth0")
			if (r != nil) != tc.want || len(res) > 1 {
				t.Fatalf("%s +%d: got %v, want fired=%v", stat, tc.jump, probetest.Reasons(res), tc.want)
			}
			if r != nil {
				want := fmt.Sprintf(`%s increased on interface "eth0" from 5000000 to %d`, stat, 5_000_000+tc.jump)
				if r.Message != want || r.Severity != "Warning" {
					t.Fatalf("result %+v, want message %q", r, want)
				}
			}
			if fr.Called("ethtool -S veth0") {
				t.Fatal("ethtool asked about a non-ENA interface")
			}
		}
	}
}

func TestNetENASmallIncrementsDoNotFire(t *testing.T) {
	// +20 per 5-minute poll for 50 minutes: the pps bucket of 320 (less
	// its refill of one token per 10 minutes) absorbs it.
	root := netENAHost(t)
	rig, clk, fr := probetest.At(t, root).Rig("ena-allowances", "")
	v := uint64(0)
	for i := range 10 {
		fr.Set("ethtool -S eth0", netEthtool(map[string]uint64{"pps_allowance_exceeded": v}))
		fr.Set("ethtool -S eth1", netEthtool(map[string]uint64{"pps_allowance_exceeded": v}))
		if res := rig.Check(); len(res) != 0 {
			t.Fatalf("poll %d (+20 per poll) reported %v", i, probetest.Reasons(res))
		}
		v += 20
		clk.Add(5 * time.Minute)
	}
}

func TestNetENASustainedGrowthDrainsBucket(t *testing.T) {
	// +100 per poll on a bucket of 100 refilling 1 per 10 minutes: the
	// first +100 empties it, the next finds only half a token back.
	root := netENAHost(t)
	rig, clk, fr := probetest.At(t, root).Rig("ena-allowances", "")
	fr.Set("ethtool -S eth1", netEthtool(nil))
	var fired []int
	for i, v := range []uint64{0, 100, 200, 300} {
		fr.Set("ethtool -S eth0", netEthtool(map[string]uint64{"bw_out_allowance_exceeded": v}))
		if probetest.Find(rig.Check(), "BandwidthOutExceeded", "eth0") != nil {
			fired = append(fired, i)
		}
		clk.Add(5 * time.Minute)
	}
	if fmt.Sprint(fired) != "[2 3]" {
		t.Fatalf("fired on polls %v, want [2 3]", fired)
	}
}

func TestNetENARecovery(t *testing.T) {
	for stat, decl := range netENAStats {
		reason := decl.Name
		root := netENAHost(t)
		rig, clk, fr := probetest.At(t, root).Rig("ena-allowances", "")
		fr.Set("ethtool -S eth0", netEthtool(nil))
		fr.Set("ethtool -S eth1", netEthtool(nil))
		rig.Check()
		clk.Add(5 * time.Minute)
		fr.Set("ethtool -S eth1", netEthtool(map[string]uint64{stat: 5000}))
		if res := rig.Check(); probetest.Find(res, reason, "eth1") == nil {
			t.Fatalf("%s jump: %v", stat, probetest.Reasons(res))
		}
		// The counter stops growing: it stays at 5000.
		rig.Recovers(reason, "eth1", func() {}, func() { clk.Add(5 * time.Minute) })
	}
}

func TestNetENAEthtoolQuirks(t *testing.T) {
	root := netENAHost(t)
	rig, clk, fr := probetest.At(t, root).Rig("ena-allowances", "bursts: {linklocal_allowance_exceeded: 10}")
	// Exit status 94 still carries the statistics.
	fr.SetErr("ethtool -S eth0", netEthtool(nil), probetest.ExitErr(94))
	fr.Set("ethtool -S eth1", netEthtool(nil))
	rig.Check()
	clk.Add(5 * time.Minute)
	fr.SetErr("ethtool -S eth0", netEthtool(map[string]uint64{"linklocal_allowance_exceeded": 11}), probetest.ExitErr(94))
	if res := rig.Check(); probetest.Find(res, "LinkLocalExceeded", "eth0") == nil {
		t.Fatalf("exit 94 output or burst override ignored: %v", probetest.Reasons(res))
	}
	// A counter that went down (driver reset) is a new baseline, not a
	// wrapped huge delta.
	clk.Add(5 * time.Minute)
	fr.SetErr("ethtool -S eth0", netEthtool(map[string]uint64{"linklocal_allowance_exceeded": 0}), probetest.ExitErr(94))
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("counter reset reported: %v", probetest.Reasons(res))
	}
	// Another failure on one interface is logged; on all, the check fails.
	fr.SetErr("ethtool -S eth0", "", probetest.ExitErr(1))
	if _, err := rig.P.Check(t.Context(), rig.Env); err != nil {
		t.Fatalf("one failing interface failed the check: %v", err)
	}
	fr.SetErr("ethtool -S eth1", "", probetest.ExitErr(1))
	if _, err := rig.P.Check(t.Context(), rig.Env); err == nil {
		t.Fatal("all interfaces failing must fail the check")
	}
	if _, err := probetest.BuildErr(t, rig.Env, "ena-allowances", "bursts: {bw_typo: 5}"); err == nil {
		t.Fatal("unknown counter accepted")
	}
}
