package network

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// Policy-routing priorities the VPC CNI uses: 512 sends traffic to a pod
// through the main table, 1536 sends traffic from a pod on a secondary ENI
// through that ENI's table.
const (
	netToPodPriority   = 512
	netFromPodPriority = 1536
	netMainTable       = 254
)

// netRule and netRoute are the parts of the kernel's policy-routing state
// the check needs, independent of where they were read from.
type netRule struct {
	Priority int
	Src, Dst netip.Prefix // zero Prefix: any
	Table    int
}

type netRoute struct {
	Dst   netip.Prefix // zero Prefix or /0: default route
	Table int
	Dev   int // output interface index, 0 when none
}

// netRouteSource reads rules and routes of one address family (4 or 6).
// The daemon reads them over netlink (net_iprules_netlink.go); tests supply
// them directly or from a network namespace of their own.
type netRouteSource interface {
	Rules(ctx context.Context, family int) ([]netRule, error)
	Routes(ctx context.Context, family int) ([]netRoute, error)
}

var ipRulesKind = probe.Kind{Name: "ip-rules", Period: 5 * time.Minute}

type netIPRulesSettings struct {
	// Confirmations is how many consecutive checks must see a pod IP
	// (or table) missing its entry before it is reported. The CNI writes
	// the checkpoint before it installs a pod's rules and removes the
	// rules before it releases the IP, so a single observation can
	// catch a pod mid-setup. 1 reports at once, as NMA does.
	Confirmations int `yaml:"confirmations"`
}

func (s netIPRulesSettings) Validate() error {
	return probe.Positive(map[string]int{"confirmations": s.Confirmations})
}

type netIPRules struct {
	probe.Base
	confirm int
	src     netRouteSource
	// misses counts consecutive checks that saw reason/key missing.
	misses map[string]int
}

var (
	missingIPRules = ipRulesKind.Reason(reason.Reason{
		Name: "MissingIPRules", Condition: finding.NetworkingReady, Severity: finding.Warning,
		Description: "A pod IP that ipamd handed out has no VPC CNI policy-routing rule (priority 512 to <ip> lookup main, " +
			"or 1536 from <ip> for pods on a secondary ENI) on two consecutive checks (probes.ip-rules.confirmations), so " +
			"the pod's traffic is misrouted. The key is the pod IP. Not checked on hybrid nodes.",
		Action: "Check ip rule show (ip -6 rule show for IPv6) and the VPC CNI logs in /var/log/aws-routed-eni; recreate " +
			"the pod, or restart the aws-node pod when many pods are affected.",
	})
	missingIPRoutes = ipRulesKind.Reason(reason.Reason{
		Name: "MissingIPRoutes", Condition: finding.NetworkingReady, Severity: finding.Warning,
		Description: "A pod IP whose rule exists has no host route to the pod's interface (<ip> dev <veth> scope link) on " +
			"two consecutive checks, so traffic from the node to the pod is dropped. The key is the pod IP.",
		Action: "Check ip route show table all for the IP and the VPC CNI logs in /var/log/aws-routed-eni; recreate the pod.",
	})
	missingDefaultRoutes = ipRulesKind.Reason(reason.Reason{
		Name: "MissingDefaultRoutes", Condition: finding.NetworkingReady, Severity: finding.Warning,
		Description: "A route table used by a secondary ENI's pods (named by a priority 1536 rule) has no default route on " +
			"two consecutive checks, so those pods cannot reach anything outside their subnet. The key is the address " +
			"family and table.",
		Action: "Check ip route show table <table> and that the ENI is still attached; restart the aws-node pod or replace " +
			"the node.",
	})
)

func init() {
	probe.Register(ipRulesKind, netIPRulesSettings{Confirmations: 2}, func(env *probe.Env, b probe.Base, s netIPRulesSettings) (probe.Probe, error) {
		// Hybrid nodes do not run the VPC CNI's routing (NMA skips them).
		if env.Tags["hybrid"] {
			return nil, nil
		}
		return &netIPRules{Base: b, confirm: s.Confirmations, src: netNetlinkRoutes{}, misses: map[string]int{}}, nil
	})
}

// Needs: an entry counts as missing after p.confirm checks, and the rules
// and routes are the daemon's own network namespace's, not --root's.
func (p *netIPRules) Needs() probe.Needs {
	return probe.Needs{Checks: p.confirm, LiveHost: "policy-routing rules and routes over netlink, in nodehealthd's network namespace"}
}

type netPodIP struct {
	addr netip.Addr
	pod  string
}

// Check compares the pod IPs ipamd has handed out with the kernel's rules
// and routes. Each address family is checked against its own rules and
// routes; NMA picked one family for all IPs from an arbitrary IP and, in
// IPv6 mode, reported every table as missing its default route (B10
// quirk 7).
func (p *netIPRules) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	if !env.Tags["eks-auto"] {
		pods, err := netVPCCNIPods(env.Root)
		if err != nil {
			return nil, err
		}
		if len(pods) == 0 {
			p.misses = map[string]int{}
			return nil, nil
		}
	}
	allocs, found, err := netReadIPAMCheckpoint(env.Root)
	if err != nil {
		return nil, err
	}
	if !found {
		env.Log.Debug("ip-rules: no ipamd checkpoint yet")
	}
	byFamily := map[int][]netPodIP{}
	for _, a := range allocs {
		// Rows without a container, interface or network are IPs
		// ipamd holds for itself, not pods (NMA filters the same).
		if a.ContainerID == "" || a.IfName == "" || a.NetworkName == "" {
			continue
		}
		for _, s := range []string{a.IPv4, a.IPv6} {
			if s == "" {
				continue
			}
			ip, err := netip.ParseAddr(s)
			if err != nil {
				env.Log.Debug("ip-rules: bad IP in checkpoint", "ip", s, "err", err)
				continue
			}
			ip = ip.Unmap()
			fam := 4
			if ip.Is6() {
				fam = 6
			}
			byFamily[fam] = append(byFamily[fam], netPodIP{addr: ip, pod: a.pod()})
		}
	}
	var candidates []probe.Result
	for _, fam := range []int{4, 6} {
		ips := byFamily[fam]
		if len(ips) == 0 {
			continue
		}
		rules, err := p.src.Rules(ctx, fam)
		if err != nil {
			return nil, fmt.Errorf("list IPv%d rules: %w", fam, err)
		}
		routes, err := p.src.Routes(ctx, fam)
		if err != nil {
			return nil, fmt.Errorf("list IPv%d routes: %w", fam, err)
		}
		candidates = append(candidates, netCheckFamily(fam, ips, rules, routes)...)
	}
	return p.confirmed(candidates), nil
}

// confirmed keeps the results seen on p.confirm consecutive checks.
func (p *netIPRules) confirmed(candidates []probe.Result) []probe.Result {
	next := map[string]int{}
	var out []probe.Result
	for _, r := range candidates {
		k := r.Reason + "\x00" + r.Key
		next[k] = p.misses[k] + 1
		if next[k] >= p.confirm {
			out = append(out, r)
		}
	}
	p.misses = next
	return out
}

func netCheckFamily(fam int, ips []netPodIP, rules []netRule, routes []netRoute) []probe.Result {
	to := map[netip.Prefix]bool{}
	from := map[netip.Prefix]bool{}
	tables := map[int]bool{}
	for _, r := range rules {
		switch {
		case r.Priority == netToPodPriority && r.Table == netMainTable && r.Dst.IsValid() && (!r.Src.IsValid() || r.Src.Bits() == 0):
			to[r.Dst] = true
		case r.Priority == netFromPodPriority && r.Src.IsValid():
			from[r.Src] = true
			tables[r.Table] = true
		}
	}
	hostRoute := map[netip.Prefix]bool{}
	defaults := map[int]bool{}
	for _, rt := range routes {
		if !rt.Dst.IsValid() || rt.Dst.Bits() == 0 {
			defaults[rt.Table] = true
			continue
		}
		if rt.Dev != 0 {
			hostRoute[rt.Dst] = true
		}
	}
	var out []probe.Result
	for _, ip := range ips {
		host := netip.PrefixFrom(ip.addr, ip.addr.BitLen())
		secondary := from[host]
		if !to[host] && !secondary {
			out = append(out, missingIPRules.Result(fmt.Sprintf("Pod IP %s is missing rules: Expected entry like `from all to %s lookup main` (pod %s)", ip.addr, ip.addr, ip.pod), ip.addr.String()))
			continue
		}
		if hostRoute[host] {
			continue
		}
		// Only a pod with a from-rule is on a secondary ENI; NMA said
		// "secondary" for the primary ENI's pods instead (B10 quirk 7).
		item := "routes"
		if secondary {
			item = "secondary routes"
		}
		want := fmt.Sprintf("%s dev <dev> scope link", ip.addr)
		if fam == 6 {
			want = fmt.Sprintf("%s dev <dev> metric 1024 pref medium", ip.addr)
		}
		out = append(out, missingIPRoutes.Result(fmt.Sprintf("Pod IP %s is missing %s: Expected entry like `%s` (pod %s)", ip.addr, item, want, ip.pod), ip.addr.String()))
	}
	var missing []int
	for t := range tables {
		if !defaults[t] {
			missing = append(missing, t)
		}
	}
	slices.Sort(missing)
	for _, t := range missing {
		fname := ""
		if fam == 6 {
			fname = "IPv6 "
		}
		out = append(out, missingDefaultRoutes.Result(
			fmt.Sprintf("Missing %sdefault route rules for table %d: Expected entry like `default via <gateway-ip> dev <dev> table %d`", fname, t, t),
			fmt.Sprintf("ipv%d/%d", fam, t)))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Reason < out[j].Reason })
	return out
}
