package probe

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// netENAHost makes eth0 and eth1 ENA devices and veth0 a veth.
func netENAHost(t *testing.T) string {
	root := t.TempDir()
	for _, ifname := range []string{"eth0", "eth1"} {
		netIface(t, root, ifname, netEthUp, "up")
		netSymlink(t, root, "sys/class/net/"+ifname+"/device/driver", "../../../../bus/pci/drivers/ena")
	}
	netIface(t, root, "veth0", netEthUp, "up")
	netSymlink(t, root, "sys/class/net/veth0/device/driver", "../../../../bus/virtio/drivers/virtio_net")
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
			env, clk, fr := netTestEnv(t, root)
			rig := newNetRig(t, netBuild(t, env, "ena-allowances", ""), env)
			base := map[string]uint64{stat: 5_000_000} // history from before the daemon started
			fr.set("ethtool -S eth0", netEthtool(base))
			fr.set("ethtool -S eth1", netEthtool(nil))
			if res := rig.check(); len(res) != 0 {
				t.Fatalf("%s: baseline poll reported %v", stat, netReasons(res))
			}
			fr.set("ethtool -S eth0", netEthtool(map[string]uint64{stat: 5_000_000 + tc.jump}))
			clk.add(5 * time.Minute)
			res := rig.check()
			r := netFind(res, reason, "eth0")
			if (r != nil) != tc.want || len(res) > 1 {
				t.Fatalf("%s +%d: got %v, want fired=%v", stat, tc.jump, netReasons(res), tc.want)
			}
			if r != nil {
				want := fmt.Sprintf(`%s increased on interface "eth0" from 5000000 to %d`, stat, 5_000_000+tc.jump)
				if r.Message != want || r.Severity != "Warning" {
					t.Fatalf("result %+v, want message %q", r, want)
				}
			}
			if fr.called("ethtool -S veth0") {
				t.Fatal("ethtool asked about a non-ENA interface")
			}
		}
	}
}

func TestNetENASmallIncrementsDoNotFire(t *testing.T) {
	// +20 per 5-minute poll for 50 minutes: the pps bucket of 320 (less
	// its refill of one token per 10 minutes) absorbs it.
	root := netENAHost(t)
	env, clk, fr := netTestEnv(t, root)
	rig := newNetRig(t, netBuild(t, env, "ena-allowances", ""), env)
	v := uint64(0)
	for i := range 10 {
		fr.set("ethtool -S eth0", netEthtool(map[string]uint64{"pps_allowance_exceeded": v}))
		fr.set("ethtool -S eth1", netEthtool(map[string]uint64{"pps_allowance_exceeded": v}))
		if res := rig.check(); len(res) != 0 {
			t.Fatalf("poll %d (+20 per poll) reported %v", i, netReasons(res))
		}
		v += 20
		clk.add(5 * time.Minute)
	}
}

func TestNetENASustainedGrowthDrainsBucket(t *testing.T) {
	// +100 per poll on a bucket of 100 refilling 1 per 10 minutes: the
	// first +100 empties it, the next finds only half a token back.
	root := netENAHost(t)
	env, clk, fr := netTestEnv(t, root)
	rig := newNetRig(t, netBuild(t, env, "ena-allowances", ""), env)
	fr.set("ethtool -S eth1", netEthtool(nil))
	var fired []int
	for i, v := range []uint64{0, 100, 200, 300} {
		fr.set("ethtool -S eth0", netEthtool(map[string]uint64{"bw_out_allowance_exceeded": v}))
		if netFind(rig.check(), "BandwidthOutExceeded", "eth0") != nil {
			fired = append(fired, i)
		}
		clk.add(5 * time.Minute)
	}
	if fmt.Sprint(fired) != "[2 3]" {
		t.Fatalf("fired on polls %v, want [2 3]", fired)
	}
}

func TestNetENARecovery(t *testing.T) {
	for stat, decl := range netENAStats {
		reason := decl.Name
		root := netENAHost(t)
		env, clk, fr := netTestEnv(t, root)
		rig := newNetRig(t, netBuild(t, env, "ena-allowances", ""), env)
		fr.set("ethtool -S eth0", netEthtool(nil))
		fr.set("ethtool -S eth1", netEthtool(nil))
		rig.check()
		clk.add(5 * time.Minute)
		fr.set("ethtool -S eth1", netEthtool(map[string]uint64{stat: 5000}))
		if res := rig.check(); netFind(res, reason, "eth1") == nil {
			t.Fatalf("%s jump: %v", stat, netReasons(res))
		}
		// The counter stops growing: it stays at 5000.
		rig.recovers(reason, "eth1", func() {}, func() { clk.add(5 * time.Minute) })
	}
}

func TestNetENAEthtoolQuirks(t *testing.T) {
	root := netENAHost(t)
	env, clk, fr := netTestEnv(t, root)
	rig := newNetRig(t, netBuild(t, env, "ena-allowances", "bursts: {linklocal_allowance_exceeded: 10}"), env)
	// Exit status 94 still carries the statistics.
	fr.setErr("ethtool -S eth0", netEthtool(nil), netExitErr(94))
	fr.set("ethtool -S eth1", netEthtool(nil))
	rig.check()
	clk.add(5 * time.Minute)
	fr.setErr("ethtool -S eth0", netEthtool(map[string]uint64{"linklocal_allowance_exceeded": 11}), netExitErr(94))
	if res := rig.check(); netFind(res, "LinkLocalExceeded", "eth0") == nil {
		t.Fatalf("exit 94 output or burst override ignored: %v", netReasons(res))
	}
	// A counter that went down (driver reset) is a new baseline, not a
	// wrapped huge delta.
	clk.add(5 * time.Minute)
	fr.setErr("ethtool -S eth0", netEthtool(map[string]uint64{"linklocal_allowance_exceeded": 0}), netExitErr(94))
	if res := rig.check(); len(res) != 0 {
		t.Fatalf("counter reset reported: %v", netReasons(res))
	}
	// Another failure on one interface is logged; on all, the check fails.
	fr.setErr("ethtool -S eth0", "", netExitErr(1))
	if _, err := rig.p.Check(t.Context(), env); err != nil {
		t.Fatalf("one failing interface failed the check: %v", err)
	}
	fr.setErr("ethtool -S eth1", "", netExitErr(1))
	if _, err := rig.p.Check(t.Context(), env); err == nil {
		t.Fatal("all interfaces failing must fail the check")
	}
	if err := netBuildErr(t, env, "ena-allowances", "bursts: {bw_typo: 5}"); err == nil {
		t.Fatal("unknown counter accepted")
	}
}
