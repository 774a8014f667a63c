package network

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netFakeRoutes is a netRouteSource built from literal entries.
type netFakeRoutes struct {
	rules  map[int][]netRule
	routes map[int][]netRoute
}

func (f *netFakeRoutes) Rules(_ context.Context, fam int) ([]netRule, error) {
	return f.rules[fam], nil
}
func (f *netFakeRoutes) Routes(_ context.Context, fam int) ([]netRoute, error) {
	return f.routes[fam], nil
}

func netPfx(s string) netip.Prefix {
	if !strings.Contains(s, "/") {
		a := netip.MustParseAddr(s)
		return netip.PrefixFrom(a, a.BitLen())
	}
	return netip.MustParsePrefix(s)
}

// netCheckpoint writes ipamd's checkpoint with one pod per IP.
func netCheckpoint(t *testing.T, root string, ips ...string) {
	t.Helper()
	type row struct {
		NetworkName string            `json:"networkName"`
		ContainerID string            `json:"containerID"`
		IfName      string            `json:"ifName"`
		IPv4        string            `json:"ipv4,omitempty"`
		IPv6        string            `json:"ipv6,omitempty"`
		Alloc       int64             `json:"allocationTimestamp"`
		Meta        map[string]string `json:"metadata"`
	}
	cp := struct {
		Version     string `json:"version"`
		Allocations []row  `json:"allocations"`
	}{Version: "vpc-cni-ipam/1", Allocations: []row{}}
	for i, ip := range ips {
		r := row{NetworkName: "aws-cni", ContainerID: "sandbox" + string(rune('a'+i)), IfName: "eth0", Alloc: 1772366400,
			Meta: map[string]string{"k8sPodNamespace": "default", "k8sPodName": "pod-" + string(rune('a'+i))}}
		if strings.Contains(ip, ":") {
			r.IPv6 = ip
		} else {
			r.IPv4 = ip
		}
		cp.Allocations = append(cp.Allocations, r)
	}
	// A warm-pool row ipamd keeps without a pod must be ignored.
	cp.Allocations = append(cp.Allocations, row{IPv4: "10.0.9.9"})
	b, err := json.Marshal(cp)
	if err != nil {
		t.Fatal(err)
	}
	probetest.At(t, root).Write("var/run/aws-node/ipam.json", string(b))
}

// netVPCRouting is what the VPC CNI programs for pod a (10.0.1.5, primary
// ENI) and pod b (10.0.2.7, secondary ENI with table 2).
func netVPCRouting() *netFakeRoutes {
	return &netFakeRoutes{
		rules: map[int][]netRule{4: {
			{Priority: 0, Table: 255},
			{Priority: 512, Dst: netPfx("10.0.1.5"), Table: 254},
			{Priority: 512, Dst: netPfx("10.0.2.7"), Table: 254},
			{Priority: 1536, Src: netPfx("10.0.2.7"), Table: 2},
			{Priority: 32766, Table: 254},
		}},
		routes: map[int][]netRoute{4: {
			{Table: 254, Dev: 2},
			{Dst: netPfx("10.0.1.5"), Table: 254, Dev: 7},
			{Dst: netPfx("10.0.2.7"), Table: 254, Dev: 8},
			{Table: 2, Dev: 3},
			{Dst: netPfx("10.0.0.0/16"), Table: 2, Dev: 3},
		}},
	}
}

func netIPRulesRig(t *testing.T, src *netFakeRoutes, section string, tags ...string) (*probetest.Rig, string) {
	t.Helper()
	root := t.TempDir()
	env, _, _ := probetest.At(t, root).Fake(tags...)
	p := probetest.Build(t, env, "ip-rules", section)
	if p == nil {
		return nil, root
	}
	p.(*netIPRules).src = src
	return probetest.NewRig(t, p, env), root
}

func TestNetIPRulesHealthy(t *testing.T) {
	rig, root := netIPRulesRig(t, netVPCRouting(), "")
	netInstallVPCCNI(t, root, "aws-node-x7k2p")
	netCheckpoint(t, root, "10.0.1.5", "10.0.2.7")
	for range 3 {
		if res := rig.Check(); len(res) != 0 {
			t.Fatalf("healthy routing reported: %v", probetest.Reasons(res))
		}
	}
}

func TestNetMissingIPRules(t *testing.T) {
	src := netVPCRouting()
	rig, root := netIPRulesRig(t, src, "")
	netInstallVPCCNI(t, root, "aws-node-x7k2p")
	netCheckpoint(t, root, "10.0.1.5", "10.0.2.7", "10.0.1.9")
	// One observation may be a pod mid-setup: not yet.
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("first observation reported: %v", probetest.Reasons(res))
	}
	res := rig.Check()
	r := probetest.Find(res, "MissingIPRules", "10.0.1.9")
	if r == nil || len(res) != 1 || r.Severity != "Warning" {
		t.Fatalf("want MissingIPRules 10.0.1.9, got %v", probetest.Reasons(res))
	}
	if r.Message != "Pod IP 10.0.1.9 is missing rules: Expected entry like `from all to 10.0.1.9 lookup main` (pod default/pod-c)" {
		t.Fatalf("message: %q", r.Message)
	}
	rig.Recovers("MissingIPRules", "10.0.1.9", func() {
		src.rules[4] = append(src.rules[4], netRule{Priority: 512, Dst: netPfx("10.0.1.9"), Table: 254})
		src.routes[4] = append(src.routes[4], netRoute{Dst: netPfx("10.0.1.9"), Table: 254, Dev: 9})
	}, nil)
}

func TestNetMissingIPRulesConfirmationsConfig(t *testing.T) {
	rig, root := netIPRulesRig(t, netVPCRouting(), "confirmations: 1")
	netInstallVPCCNI(t, root, "aws-node-x7k2p")
	netCheckpoint(t, root, "10.0.1.9")
	if res := rig.Check(); probetest.Find(res, "MissingIPRules", "10.0.1.9") == nil {
		t.Fatalf("confirmations: 1 must report at once: %v", probetest.Reasons(res))
	}
}

func TestNetMissingIPRoutesWording(t *testing.T) {
	// Pod a is on the primary ENI, pod b on a secondary one (it has a
	// from-rule). Only b's message may say "secondary" (B10 quirk 7).
	src := netVPCRouting()
	src.routes[4] = []netRoute{{Table: 254, Dev: 2}, {Table: 2, Dev: 3}}
	rig, root := netIPRulesRig(t, src, "")
	netInstallVPCCNI(t, root, "aws-node-x7k2p")
	netCheckpoint(t, root, "10.0.1.5", "10.0.2.7")
	rig.Check()
	res := rig.Check()
	a, b := probetest.Find(res, "MissingIPRoutes", "10.0.1.5"), probetest.Find(res, "MissingIPRoutes", "10.0.2.7")
	if a == nil || b == nil || len(res) != 2 {
		t.Fatalf("want MissingIPRoutes for both pods, got %v", probetest.Reasons(res))
	}
	if a.Message != "Pod IP 10.0.1.5 is missing routes: Expected entry like `10.0.1.5 dev <dev> scope link` (pod default/pod-a)" {
		t.Errorf("primary ENI pod: %q", a.Message)
	}
	if !strings.Contains(b.Message, "is missing secondary routes") {
		t.Errorf("secondary ENI pod: %q", b.Message)
	}
	rig.Recovers("MissingIPRoutes", "10.0.1.5", func() {
		src.routes[4] = netVPCRouting().routes[4]
	}, nil)
}

func TestNetMissingDefaultRoutes(t *testing.T) {
	src := netVPCRouting()
	src.routes[4] = []netRoute{{Table: 254, Dev: 2}, {Dst: netPfx("10.0.1.5"), Table: 254, Dev: 7}, {Dst: netPfx("10.0.2.7"), Table: 254, Dev: 8}}
	rig, root := netIPRulesRig(t, src, "")
	netInstallVPCCNI(t, root, "aws-node-x7k2p")
	netCheckpoint(t, root, "10.0.1.5", "10.0.2.7")
	rig.Check()
	res := rig.Check()
	r := probetest.Find(res, "MissingDefaultRoutes", "ipv4/2")
	if r == nil || len(res) != 1 {
		t.Fatalf("want MissingDefaultRoutes table 2, got %v", probetest.Reasons(res))
	}
	if r.Message != "Missing default route rules for table 2: Expected entry like `default via <gateway-ip> dev <dev> table 2`" {
		t.Fatalf("message: %q", r.Message)
	}
	rig.Recovers("MissingDefaultRoutes", "ipv4/2", func() {
		src.routes[4] = append(src.routes[4], netRoute{Table: 2, Dev: 3})
	}, nil)
}

func TestNetIPRulesIPv6(t *testing.T) {
	// An IPv6 cluster: the pods' rules and routes are IPv6 ones and the
	// node's IPv4 side has an ENI table of its own. NMA judged everything
	// in one family and reported every table in IPv6 mode (B10 quirk 7).
	src := netVPCRouting()
	src.rules[6] = []netRule{
		{Priority: 512, Dst: netPfx("2600:1f14::5"), Table: 254},
		{Priority: 512, Dst: netPfx("2600:1f14::6"), Table: 254},
	}
	src.routes[6] = []netRoute{
		{Table: 254, Dev: 2},
		{Dst: netPfx("2600:1f14::5"), Table: 254, Dev: 7},
	}
	rig, root := netIPRulesRig(t, src, "")
	netInstallVPCCNI(t, root, "aws-node-x7k2p")
	netCheckpoint(t, root, "2600:1f14::5", "2600:1f14::6", "10.0.1.5")
	rig.Check()
	res := rig.Check()
	r := probetest.Find(res, "MissingIPRoutes", "2600:1f14::6")
	if r == nil || len(res) != 1 {
		t.Fatalf("want only MissingIPRoutes for 2600:1f14::6, got %v", probetest.Reasons(res))
	}
	if !strings.Contains(r.Message, "`2600:1f14::6 dev <dev> metric 1024 pref medium`") {
		t.Fatalf("IPv6 message: %q", r.Message)
	}
	// An IPv6 from-rule whose table lacks an IPv6 default route.
	src.rules[6] = append(src.rules[6], netRule{Priority: 1536, Src: netPfx("2600:1f14::5"), Table: 3})
	rig.Check()
	if res := rig.Check(); probetest.Find(res, "MissingDefaultRoutes", "ipv6/3") == nil || probetest.Find(res, "MissingDefaultRoutes", "ipv4/2") != nil {
		t.Fatalf("IPv6 table check: %v", probetest.Reasons(res))
	}
}

func TestNetIPRulesNeedVPCCNI(t *testing.T) {
	// Calico and Cilium nodes have no aws-node pod with the VPC CNI's init
	// container (Cilium in ENI mode even names its pods differently); a
	// stale checkpoint must not be judged there.
	rig, root := netIPRulesRig(t, &netFakeRoutes{}, "confirmations: 1")
	netCheckpoint(t, root, "10.0.1.5")
	probetest.At(t, root).Mkdir("var/log/pods/kube-system_calico-node-4xk9d_1c2d/calico-node")
	probetest.At(t, root).Mkdir("var/log/pods/kube-system_cilium-7fdp2_9a8b/cilium-agent")
	// An aws-node pod without the init container (e.g. only the network
	// policy agent) is not the VPC CNI either.
	probetest.At(t, root).Mkdir("var/log/pods/kube-system_aws-node-abcde_77/aws-eks-nodeagent")
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("non-VPC-CNI node reported: %v", probetest.Reasons(res))
	}
	// Hybrid nodes skip the probe altogether.
	if hybrid, _ := netIPRulesRig(t, &netFakeRoutes{}, "", "hybrid"); hybrid != nil {
		t.Fatal("ip-rules built on a hybrid node")
	}
}

func TestNetIPRulesNoCheckpoint(t *testing.T) {
	rig, root := netIPRulesRig(t, &netFakeRoutes{}, "confirmations: 1")
	netInstallVPCCNI(t, root, "aws-node-x7k2p")
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("no checkpoint: %v", probetest.Reasons(res))
	}
	// The /run location is read when /var/run is not there.
	netCheckpoint(t, root, "10.0.1.5")
	if err := os.Rename(root+"/var/run/aws-node", root+"/run-aws-node"); err != nil {
		t.Fatal(err)
	}
	probetest.At(t, root).Mkdir("run")
	if err := os.Rename(root+"/run-aws-node", root+"/run/aws-node"); err != nil {
		t.Fatal(err)
	}
	if res := rig.Check(); probetest.Find(res, "MissingIPRules", "10.0.1.5") == nil {
		t.Fatalf("fallback checkpoint not read: %v", probetest.Reasons(res))
	}
}

// TestNetIPRulesNetlink runs the probe against real kernel state: a
// network namespace of its own, programmed the way the VPC CNI does it, read
// back over netlink.
func TestNetIPRulesNetlink(t *testing.T) {
	h := netTestNamespace(t)
	v0, err := h.LinkByName("v0")
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	host := func(s string) *net.IPNet {
		ip := net.ParseIP(s)
		bits := 128
		if ip.To4() != nil {
			bits = 32
		}
		return &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}
	}
	rule := func(prio, table int, src, dst *net.IPNet) {
		r := netlink.NewRule()
		r.Priority, r.Table, r.Src, r.Dst = prio, table, src, dst
		if (src != nil && src.IP.To4() == nil) || (dst != nil && dst.IP.To4() == nil) {
			r.Family = netlink.FAMILY_V6
		}
		must(h.RuleAdd(r))
	}
	// Pod a on the primary ENI, pod b on the secondary ENI (table 2).
	rule(512, 254, nil, host("10.0.0.5"))
	rule(512, 254, nil, host("10.0.0.6"))
	rule(1536, 2, host("10.0.0.6"), nil)
	must(h.RouteAdd(&netlink.Route{LinkIndex: v0.Attrs().Index, Dst: host("10.0.0.5"), Scope: netlink.SCOPE_LINK}))
	must(h.RouteAdd(&netlink.Route{LinkIndex: v0.Attrs().Index, Dst: host("10.0.0.6"), Scope: netlink.SCOPE_LINK}))
	must(h.RouteAdd(&netlink.Route{LinkIndex: v0.Attrs().Index, Gw: net.ParseIP("10.0.0.254"), Table: 2}))
	rule(512, 254, nil, host("2001:db8::5"))
	must(h.RouteAdd(&netlink.Route{LinkIndex: v0.Attrs().Index, Dst: host("2001:db8::5")}))

	root := t.TempDir()
	env, _, _ := probetest.At(t, root).Fake()
	p := probetest.Build(t, env, "ip-rules", "confirmations: 1").(*netIPRules)
	p.src = netNetlinkRoutes{h: h}
	rig := probetest.NewRig(t, p, env)
	netInstallVPCCNI(t, root, "aws-node-x7k2p")
	netCheckpoint(t, root, "10.0.0.5", "10.0.0.6", "2001:db8::5")
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("kernel state as the VPC CNI programs it reported: %v", probetest.Reasons(res))
	}
	// Break it: the secondary ENI table loses its default route, pod a
	// its route, and a pod without rules appears.
	must(h.RouteDel(&netlink.Route{LinkIndex: v0.Attrs().Index, Gw: net.ParseIP("10.0.0.254"), Table: 2}))
	// An unreachable default is no way out for the pod.
	must(h.RouteAdd(&netlink.Route{Type: unix.RTN_UNREACHABLE, Table: 2, Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}}))
	must(h.RouteDel(&netlink.Route{LinkIndex: v0.Attrs().Index, Dst: host("10.0.0.5"), Scope: netlink.SCOPE_LINK}))
	netCheckpoint(t, root, "10.0.0.5", "10.0.0.6", "2001:db8::5", "2001:db8::9")
	got := strings.Join(probetest.Reasons(rig.Check()), " ")
	want := "MissingDefaultRoutes/ipv4/2 MissingIPRoutes/10.0.0.5 MissingIPRules/2001:db8::9"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// netTestNamespace creates a network namespace with an up veth pair
// (v0 10.0.0.1/24) and returns a netlink handle bound to it; the test's
// own threads never enter it. It skips where namespaces cannot be made.
func netTestNamespace(t *testing.T) *netlink.Handle {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Skipf("no network namespaces: %v", err)
	}
	defer orig.Close()
	ns, err := netns.New() // also switches this thread into ns
	if err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatalf("cannot return to the original namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	la := netlink.NewLinkAttrs()
	la.Name = "v0"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "v1"}); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOPNOTSUPP) {
			t.Skipf("cannot create a veth: %v", err)
		}
		t.Fatal(err)
	}
	for _, name := range []string{"lo", "v0", "v1"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	v0, _ := h.LinkByName("v0")
	addr, _ := netlink.ParseAddr("10.0.0.1/24")
	if err := h.AddrAdd(v0, addr); err != nil {
		t.Fatal(err)
	}
	return h
}
