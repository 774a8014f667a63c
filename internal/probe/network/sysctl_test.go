package network

import (
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

func TestNetSysctlIPForward(t *testing.T) {
	root := t.TempDir()
	probetest.At(t, root).Write("proc/sys/net/ipv4/ip_forward", "0\n")
	rig, _, _ := probetest.At(t, root).Rig("network-sysctl", "")
	res := rig.Check()
	r := probetest.Find(res, "NetworkSysctl", "net.ipv4.ip_forward")
	if r == nil || len(res) != 1 || r.Severity != "Warning" {
		t.Fatalf("want NetworkSysctl, got %v", probetest.Reasons(res))
	}
	if !strings.HasPrefix(r.Message, "A network related sysctl parameter may be misconfigured") || !strings.Contains(r.Message, `"0"`) {
		t.Fatalf("message: %q", r.Message)
	}
	rig.Recovers("NetworkSysctl", "net.ipv4.ip_forward", func() {
		probetest.At(t, root).Write("proc/sys/net/ipv4/ip_forward", "1\n")
	}, nil)
}

func TestNetSysctlHealthy(t *testing.T) {
	root := t.TempDir()
	probetest.At(t, root).Write("proc/sys/net/ipv4/ip_forward", "1\n")
	rig, _, _ := probetest.At(t, root).Rig("network-sysctl", "")
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("ip_forward=1 reported: %v", probetest.Reasons(res))
	}
}

func TestNetSysctlExtraAndMissing(t *testing.T) {
	root := t.TempDir()
	probetest.At(t, root).Write("proc/sys/net/ipv4/ip_forward", "1\n")
	probetest.At(t, root).Write("proc/sys/net/ipv6/conf/all/forwarding", "0\n")
	probetest.At(t, root).Write("proc/sys/net/ipv4/tcp_rmem", "4096\t131072\t6291456\n")
	env, _, _ := probetest.At(t, root).Fake()
	p := probetest.Build(t, env, "network-sysctl", `expected: {net.ipv6.conf.all.forwarding: "1", net/ipv4/tcp_rmem: "4096 131072 6291456"}`)
	rig := probetest.NewRig(t, p, env)
	if got := strings.Join(probetest.Reasons(rig.Check()), " "); got != "NetworkSysctl/net.ipv6.conf.all.forwarding" {
		t.Fatalf("got %q", got)
	}
	// A sysctl that does not exist is an error, not a pass.
	p = probetest.Build(t, env, "network-sysctl", `expected: {net.ipv4.no_such_knob: "1"}`)
	if _, err := p.Check(t.Context(), env); err == nil {
		t.Fatal("missing sysctl passed")
	}
	for _, bad := range []string{`expected: {"../../etc/passwd": "x"}`, `expected: {"/proc/sys/x": "1"}`} {
		if _, err := probetest.BuildErr(t, env, "network-sysctl", bad); err == nil {
			t.Errorf("config %s accepted", bad)
		}
	}
}
