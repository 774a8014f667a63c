package probe

import (
	"strings"
	"testing"
)

func TestNetSysctlIPForward(t *testing.T) {
	root := t.TempDir()
	netWrite(t, root, "proc/sys/net/ipv4/ip_forward", "0\n")
	env, _, _ := netTestEnv(t, root)
	rig := newNetRig(t, netBuild(t, env, "network-sysctl", ""), env)
	res := rig.check()
	r := netFind(res, "NetworkSysctl", "net.ipv4.ip_forward")
	if r == nil || len(res) != 1 || r.Severity != "Warning" {
		t.Fatalf("want NetworkSysctl, got %v", netReasons(res))
	}
	if !strings.HasPrefix(r.Message, "A network related sysctl parameter may be misconfigured") || !strings.Contains(r.Message, `"0"`) {
		t.Fatalf("message: %q", r.Message)
	}
	rig.recovers("NetworkSysctl", "net.ipv4.ip_forward", func() {
		netWrite(t, root, "proc/sys/net/ipv4/ip_forward", "1\n")
	}, nil)
}

func TestNetSysctlHealthy(t *testing.T) {
	root := t.TempDir()
	netWrite(t, root, "proc/sys/net/ipv4/ip_forward", "1\n")
	env, _, _ := netTestEnv(t, root)
	rig := newNetRig(t, netBuild(t, env, "network-sysctl", ""), env)
	if res := rig.check(); len(res) != 0 {
		t.Fatalf("ip_forward=1 reported: %v", netReasons(res))
	}
}

func TestNetSysctlExtraAndMissing(t *testing.T) {
	root := t.TempDir()
	netWrite(t, root, "proc/sys/net/ipv4/ip_forward", "1\n")
	netWrite(t, root, "proc/sys/net/ipv6/conf/all/forwarding", "0\n")
	netWrite(t, root, "proc/sys/net/ipv4/tcp_rmem", "4096\t131072\t6291456\n")
	env, _, _ := netTestEnv(t, root)
	p := netBuild(t, env, "network-sysctl", `expected: {net.ipv6.conf.all.forwarding: "1", net/ipv4/tcp_rmem: "4096 131072 6291456"}`)
	rig := newNetRig(t, p, env)
	if got := strings.Join(netReasons(rig.check()), " "); got != "NetworkSysctl/net.ipv6.conf.all.forwarding" {
		t.Fatalf("got %q", got)
	}
	// A sysctl that does not exist is an error, not a pass.
	p = netBuild(t, env, "network-sysctl", `expected: {net.ipv4.no_such_knob: "1"}`)
	if _, err := p.Check(t.Context(), env); err == nil {
		t.Fatal("missing sysctl passed")
	}
	for _, bad := range []string{`expected: {"../../etc/passwd": "x"}`, `expected: {"/proc/sys/x": "1"}`} {
		if err := netBuildErr(t, env, "network-sysctl", bad); err == nil {
			t.Errorf("config %s accepted", bad)
		}
	}
}
