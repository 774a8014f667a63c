package network

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

const netEmptyV6 = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"

func netIPTablesRig(t *testing.T, v4, v6, section string, tags ...string) (*probetest.Rig, *probetest.FakeRun) {
	t.Helper()
	env, _, fr := probetest.At(t, t.TempDir()).Fake(tags...)
	fr.Set("iptables-save", v4)
	fr.Set("ip6tables-save", v6)
	return probetest.NewRig(t, probetest.Build(t, env, "iptables", section), env), fr
}

// netRulesOf lists "reason table/chain" for each result.
func netRulesOf(res []probe.Result) []string {
	var out []string
	for _, r := range res {
		parts := strings.Split(r.Key, "/")
		out = append(out, r.Reason+" "+parts[0]+"/"+parts[1])
	}
	slices.Sort(out)
	return out
}

func TestNetIPTablesNoFalseAlarms(t *testing.T) {
	// What kube-proxy (iptables and IPVS modes), the VPC CNI, the EKS Pod
	// Identity agent, Calico and Cilium program must not be reported; nor
	// must kube-proxy's DNAT of a service to a pod listening on 10250
	// (metrics-server), which is not the kubelet's port on the node.
	for _, f := range []string{"kube-proxy-iptables-vpc-cni.txt", "kube-proxy-ipvs.txt", "calico.txt", "cilium.txt"} {
		rig, _ := netIPTablesRig(t, probetest.Testdata(t, "net_iptables/"+f), netEmptyV6, "")
		if res := rig.Check(); len(res) != 0 {
			t.Errorf("%s: %v", f, netRulesOf(res))
		}
	}
}

func TestNetUnexpectedRejectRule(t *testing.T) {
	rig, fr := netIPTablesRig(t, probetest.Testdata(t, "net_iptables/offending.txt"), netEmptyV6, "")
	res := rig.Check()
	want := []string{
		"PortConflict nat/CNI-DN-5e3d1f0c6b8a2e4f7c9d1",
		"UnexpectedRejectRule filter/FORWARD",
		"UnexpectedRejectRule filter/INPUT",
		"UnexpectedRejectRule filter/KUBE-FORWARD",  // ctstate is not exactly INVALID
		"UnexpectedRejectRule filter/KUBE-SERVICES", // not a no-endpoints rule
		"UnexpectedRejectRule filter/MY-FIREWALL",
	}
	if got := netRulesOf(res); !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	var fwd *probe.Result
	for i := range res {
		if strings.HasPrefix(res[i].Key, "filter/FORWARD/") {
			fwd = &res[i]
		}
	}
	if fwd.Severity != "Warning" || fwd.Message != `Found an unexpected iptables reject rule: "-A FORWARD -s 10.0.0.0/16 -m comment --comment \"quarantine pods\" -j DROP"` {
		t.Fatalf("result: %+v", fwd)
	}
	// Keys are stable across checks, so the tracker sees the same finding.
	again := rig.Check()
	for i := range res {
		if res[i].Key != again[i].Key {
			t.Fatalf("unstable key %s vs %s", res[i].Key, again[i].Key)
		}
	}
	key := fwd.Key
	rig.Recovers("UnexpectedRejectRule", key, func() {
		fr.Set("iptables-save", probetest.Testdata(t, "net_iptables/kube-proxy-iptables-vpc-cni.txt"))
	}, nil)
}

func TestNetPortConflict(t *testing.T) {
	save := probetest.Testdata(t, "net_iptables/offending.txt")
	// Hybrid nodes run their owner's firewall: no reject check there, but
	// a DNAT stealing the kubelet's port is still reported.
	rig, fr := netIPTablesRig(t, save, netEmptyV6, "", "hybrid")
	res := rig.Check()
	if got := netRulesOf(res); !slices.Equal(got, []string{"PortConflict nat/CNI-DN-5e3d1f0c6b8a2e4f7c9d1"}) {
		t.Fatalf("hybrid: %v", got)
	}
	if res[0].Message != `Potential iptables rule conflict on port 10250: "-A CNI-DN-5e3d1f0c6b8a2e4f7c9d1 -p tcp -m tcp --dport 10250 -j DNAT --to-destination 10.0.1.44:10250"` {
		t.Fatalf("message: %q", res[0].Message)
	}
	rig.Recovers("PortConflict", res[0].Key, func() {
		fr.Set("iptables-save", strings.ReplaceAll(save, "--dport 10250 -j DNAT", "--dport 8080 -j DNAT"))
	}, nil)
}

func TestNetPortConflictPorts(t *testing.T) {
	for spec, want := range map[string]bool{
		"10250": true, "10250:10260": true, "10000:": true, ":10250": true, "80,10250": true, "80,10240:10255": true,
		"10251": false, "!10250": false, "80,443": false, "": false, "http": false,
	} {
		if got := netPortsInclude(spec, 10250); got != want {
			t.Errorf("%q: got %v", spec, got)
		}
	}
}

func TestNetIPTablesAllowedChainsConfig(t *testing.T) {
	rig, _ := netIPTablesRig(t, probetest.Testdata(t, "net_iptables/offending.txt"), netEmptyV6,
		"allowedIPTablesChains: [filter/MY-FIREWALL, filter/INPUT]")
	got := netRulesOf(rig.Check())
	if slices.Contains(got, "UnexpectedRejectRule filter/MY-FIREWALL") || slices.Contains(got, "UnexpectedRejectRule filter/INPUT") || len(got) != 4 {
		t.Fatalf("allowed chains still reported: %v", got)
	}
	env, _, _ := probetest.At(t, t.TempDir()).Fake()
	for _, bad := range []string{"allowedIPTablesChains: [MY-FIREWALL]", "allowedIPTablesChains: [' filter/X']", "allowedIPTablesChains: [filter/a/b]", "kubeletPort: 70000"} {
		if _, err := probetest.BuildErr(t, env, "iptables", bad); err == nil {
			t.Errorf("config %q accepted", bad)
		}
	}
}

func TestNetIPTablesIPv6(t *testing.T) {
	v6 := "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 2001:db8::/32 -j REJECT --reject-with icmp6-adm-prohibited\nCOMMIT\n"
	rig, _ := netIPTablesRig(t, netEmptyV6, v6, "")
	res := rig.Check()
	if len(res) != 1 || res[0].Reason != "UnexpectedRejectRule" || !strings.HasPrefix(res[0].Message, "Found an unexpected ip6tables reject rule") {
		t.Fatalf("IPv6 reject rule: %+v", res)
	}
	// The same rule text in both families gives two findings.
	rig2, _ := netIPTablesRig(t, v6, v6, "")
	if res := rig2.Check(); len(res) != 2 || res[0].Key == res[1].Key {
		t.Fatalf("per-family keys: %+v", res)
	}
}

func TestNetIPTablesMissingCommands(t *testing.T) {
	rig, fr := netIPTablesRig(t, probetest.Testdata(t, "net_iptables/offending.txt"), "", "")
	fr.Unset("ip6tables-save") // an IPv4-only host
	if res := rig.Check(); len(res) != 6 {
		t.Fatalf("without ip6tables-save: %v", netRulesOf(res))
	}
	fr.Unset("iptables-save")
	if _, err := rig.P.Check(t.Context(), rig.Env); !errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("no iptables at all must fail the check as not found, got %v", err)
	}
}

func TestNetIPTablesTokens(t *testing.T) {
	r := netParseIPTRule("filter", `-A KUBE-FIREWALL ! -s 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`)
	if r.chain != "KUBE-FIREWALL" || r.opt("-s") != "!127.0.0.0/8" || r.opt("--ctstate") != "!RELATED,ESTABLISHED,DNAT" ||
		r.opt("--comment") != `"block incoming localnet connections"` || !slices.Equal(r.matches, []string{"comment", "conntrack"}) || r.opt("-j") != "DROP" {
		t.Fatalf("parsed %+v", r)
	}
}
