package probe

import (
	"context"
	"testing"
	"time"
)

// TestNeedsChecksIsWhatTheProbeTakes holds each probe to its declared
// Needs.Checks: with the problem present from the first check on, the
// probe reports nothing before its Checks-th check and reports it then.
// nodehealthd --once checks a probe exactly that often, so a declaration
// that is too low hides the problem and one too high wastes time.
func TestNeedsChecksIsWhatTheProbeTakes(t *testing.T) {
	cases := []struct {
		name string
		// build returns the probe on a tree that shows the problem,
		// and what to do before each check (nil: nothing).
		build      func(t *testing.T) (Probe, *Env, func())
		wantChecks int
	}{
		{"interfaces: an interface down", func(t *testing.T) (Probe, *Env, func()) {
			root := netHealthyIfaces(t)
			netIface(t, root, "eth1", netEthDown, "down")
			env, clk, _ := netTestEnv(t, root)
			return netBuild(t, env, "interfaces", ""), env, func() { clk.add(time.Second) }
		}, 2},
		{"ipamd: not running", func(t *testing.T) (Probe, *Env, func()) {
			root := t.TempDir()
			netInstallVPCCNI(t, root, "aws-node-x7k2p")
			netProc(t, root, 1, "systemd")
			env, clk, _ := netTestEnv(t, root)
			p := netBuild(t, env, "ipamd", "inconsistentState: false")
			return p, env, func() { clk.add(time.Second) }
		}, 3},
		{"ipamd on Auto Mode: unit inactive", func(t *testing.T) (Probe, *Env, func()) {
			env, clk, _ := netTestEnv(t, t.TempDir(), "eks-auto")
			p := netBuild(t, env, "ipamd", "inconsistentState: false").(*netIPAMD)
			p.units = &netFakeUnits{st: map[string]netUnitState{"ipamd.service": {ActiveState: "inactive"}}}
			return p, env, func() { clk.add(time.Second) }
		}, 2},
		{"ip-rules: a rule missing", func(t *testing.T) (Probe, *Env, func()) {
			root := t.TempDir()
			netInstallVPCCNI(t, root, "aws-node-x7k2p")
			netCheckpoint(t, root, "10.0.1.5", "10.0.2.7", "10.0.1.9")
			env, _, _ := netTestEnv(t, root)
			p := netBuild(t, env, "ip-rules", "").(*netIPRules)
			p.src = netVPCRouting()
			return p, env, nil
		}, 2},
		{"ip-rules: confirmations 3", func(t *testing.T) (Probe, *Env, func()) {
			root := t.TempDir()
			netInstallVPCCNI(t, root, "aws-node-x7k2p")
			netCheckpoint(t, root, "10.0.1.5", "10.0.2.7", "10.0.1.9")
			env, _, _ := netTestEnv(t, root)
			p := netBuild(t, env, "ip-rules", "confirmations: 3").(*netIPRules)
			p.src = netVPCRouting()
			return p, env, nil
		}, 3},
		{"zombies: a pile-up", func(t *testing.T) (Probe, *Env, func()) {
			ft := zombieFixture(t, 20)
			env := ft.env()
			return buildProbe(t, env, "zombies", ""), env, nil
		}, 5},
		{"zombies: consecutive 2", func(t *testing.T) (Probe, *Env, func()) {
			ft := zombieFixture(t, 20)
			env := ft.env()
			return buildProbe(t, env, "zombies", "consecutive: 2"), env, nil
		}, 2},
		{"io-delays: a process waiting on I/O", func(t *testing.T) (Probe, *Env, func()) {
			ft := newFxTree(t)
			env := ft.env()
			ticks := uint64(0)
			return buildProbe(t, env, "io-delays", ""), env, func() {
				ticks += 5000
				ft.proc(fxProc{pid: 42, comm: "postgres", starttime: 7, blkioTicks: ticks})
			}
		}, 2},
		{"open-files: one read", func(t *testing.T) (Probe, *Env, func()) {
			ft := newFxTree(t)
			ft.write("/proc/sys/fs/file-nr", "9000\t0\t10000\n")
			env := ft.env()
			return buildProbe(t, env, "open-files", ""), env, nil
		}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, env, step := c.build(t)
			if got := max(p.Needs().Checks, 1); got != c.wantChecks {
				t.Fatalf("%s declares Needs.Checks %d, want %d", p.Name(), got, c.wantChecks)
			}
			for i := 1; i <= c.wantChecks; i++ {
				if step != nil {
					step()
				}
				res, err := p.Check(context.Background(), env)
				if err != nil {
					t.Fatalf("check %d: %v", i, err)
				}
				if i < c.wantChecks && len(res) != 0 {
					t.Fatalf("check %d of %d already reports %v: Needs.Checks is too high", i, c.wantChecks, res)
				}
				if i == c.wantChecks && len(res) == 0 {
					t.Fatalf("nothing reported after %d checks: Needs.Checks is too low", i)
				}
			}
		})
	}
}

// TestNeedsLiveHostOfProcessProbes: a probe that lists processes reads
// the tree's /proc in-process but the running host's through the helper,
// which ignores Env.Root.
func TestNeedsLiveHostOfProcessProbes(t *testing.T) {
	for _, name := range []string{"zombies", "io-delays", "large-environment", "ipamd"} {
		env, _, _ := netTestEnv(t, t.TempDir())
		if n := netBuild(t, env, name, "").Needs(); n.LiveHost != "" {
			t.Errorf("%s in-process: LiveHost %q, want none", name, n.LiveHost)
		}
		env.Privileged = &fakePrivileged{}
		if n := netBuild(t, env, name, "").Needs(); n.LiveHost == "" {
			t.Errorf("%s through the helper: no LiveHost", name)
		}
	}
}

// TestNeedsLasting: the network policy agent's outage is timed on the
// clock, which the declaration carries.
func TestNeedsLasting(t *testing.T) {
	env, _, _ := netTestEnv(t, t.TempDir(), "eks-auto")
	for section, want := range map[string]time.Duration{"": 15 * time.Minute, "notRunningFor: 2m": 2 * time.Minute} {
		if got := netBuild(t, env, "network-policy-agent", section).Needs().Lasting; got != want {
			t.Errorf("%q: Lasting %v, want %v", section, got, want)
		}
	}
}
