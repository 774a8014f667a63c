package network

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

var ipTablesKind = probe.Kind{Name: "iptables", Period: 5 * time.Minute}

type netIPTablesSettings struct {
	// AllowedIPTablesChains are "table/chain" pairs whose reject rules
	// are expected (NMA's networking.allowedIPTablesChains).
	AllowedIPTablesChains []string `yaml:"allowedIPTablesChains"`
	// KubeletPort is the port a DNAT rule must not capture.
	KubeletPort int `yaml:"kubeletPort"`
	// Timeout bounds each *-save command.
	Timeout time.Duration `yaml:"timeout"`
}

func (s netIPTablesSettings) Validate() error {
	var errs []error
	if s.KubeletPort < 1 || s.KubeletPort > 65535 {
		errs = append(errs, fmt.Errorf("kubeletPort %d out of range", s.KubeletPort))
	}
	for _, e := range s.AllowedIPTablesChains {
		table, chain, ok := strings.Cut(e, "/")
		if !ok || table == "" || chain == "" || strings.Contains(chain, "/") || strings.TrimSpace(e) != e {
			errs = append(errs, fmt.Errorf("allowedIPTablesChains: %q is not \"table/chain\"", e))
		}
	}
	return errors.Join(append(errs, probe.Positive(map[string]time.Duration{"timeout": s.Timeout}))...)
}

type netIPTables struct {
	probe.Base
	timeout     time.Duration
	port        int
	allowed     map[string]bool // "table/chain"
	checkReject bool
	missing     map[string]bool // commands already reported absent
}

var (
	unexpectedRejectRule = ipTablesKind.Reason(reason.Reason{
		Name: "UnexpectedRejectRule", Condition: finding.NetworkingReady, Severity: finding.Warning,
		Description: "An iptables or ip6tables rule rejects or drops traffic (REJECT, DROP, --reject-with) and is not one " +
			"of the expected rejects (kube-proxy's, Calico's, Cilium's and Docker's, or a chain listed in " +
			"probes.iptables.allowedIPTablesChains). Such rules, often left by host firewalls or hardening scripts, break " +
			"pod or node traffic. Not checked on hybrid nodes.",
		Action: "Find what installed the rule quoted in the message (iptables-save) and remove it; if it is intended, add " +
			"its table/chain to probes.iptables.allowedIPTablesChains.",
	})
	portConflict = ipTablesKind.Reason(reason.Reason{
		Name: "PortConflict", Condition: finding.NetworkingReady, Severity: finding.Warning,
		Description: "A DNAT rule captures traffic to the kubelet's port (10250, probes.iptables.kubeletPort), so the API " +
			"server's calls to the kubelet (logs, exec, metrics) go elsewhere.",
		Action: "Find the component that installed the rule (iptables-save -t nat), typically a hostPort or a proxy, and move " +
			"it to another port.",
	})
)

func init() {
	probe.Register(ipTablesKind, netIPTablesSettings{KubeletPort: 10250, Timeout: 30 * time.Second}, func(env *probe.Env, b probe.Base, s netIPTablesSettings) (probe.Probe, error) {
		p := &netIPTables{
			Base: b, timeout: s.Timeout, port: s.KubeletPort, allowed: map[string]bool{}, missing: map[string]bool{},
			// Hybrid nodes run the customer's own firewall (NMA skips
			// the reject check there but keeps PortConflict).
			checkReject: !env.Tags["hybrid"],
		}
		for _, e := range s.AllowedIPTablesChains {
			p.allowed[e] = true
		}
		return p, nil
	})
}

// Needs: the *-save commands print the daemon's own network namespace's
// rules, not --root's.
func (p *netIPTables) Needs() probe.Needs {
	return probe.Needs{LiveHost: "iptables-save and ip6tables-save in nodehealthd's network namespace"}
}

// Check reads the rulesets with iptables-save and ip6tables-save. On hosts
// whose iptables is the nftables-backed variant (AL2023, Bottlerocket,
// recent Ubuntu) these print the same format from the nft-backed xtables
// tables, which is what kube-proxy, the VPC CNI and Calico program. Rules
// written with nft directly (kube-proxy's nftables mode, table
// "kube-proxy") are not inspected: the allow-list below is about iptables
// chains, and an nft ruleset would need its own. A host without one of the
// commands is logged once and checked with what is there.
func (p *netIPTables) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	var out []probe.Result
	ran := 0
	var notFound error
	for _, fam := range []struct{ cmd, label string }{{"iptables-save", "iptables"}, {"ip6tables-save", "ip6tables"}} {
		cctx, cancel := context.WithTimeout(ctx, p.timeout)
		b, err := env.Command(cctx, fam.cmd)
		cancel()
		if err != nil {
			if errors.Is(err, exec.ErrNotFound) {
				notFound = err
				if !p.missing[fam.cmd] {
					env.Log.Info("iptables: command not available, skipping it", "cmd", fam.cmd)
					p.missing[fam.cmd] = true
				}
				continue
			}
			return nil, fmt.Errorf("%s: %w", fam.cmd, err)
		}
		ran++
		out = append(out, p.scan(fam.label, b)...)
	}
	if ran == 0 {
		// Wrapped so that callers can tell "not on this host" apart.
		return nil, fmt.Errorf("neither iptables-save nor ip6tables-save is available: %w", notFound)
	}
	return out, nil
}

// netIPTRule is one parsed "-A" line.
type netIPTRule struct {
	table, chain, raw string
	opts              map[string][]string
	matches           []string // -m modules
}

func (r *netIPTRule) opt(names ...string) string {
	for _, n := range names {
		if v := r.opts[n]; len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func (p *netIPTables) scan(label string, save []byte) []probe.Result {
	var out []probe.Result
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(save))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			continue
		case !strings.HasPrefix(line, "-A "):
			continue
		}
		r := netParseIPTRule(table, line)
		key := fmt.Sprintf("%s/%s/%s", r.table, r.chain, netHash(label, line)[:12])
		if p.checkReject && netIsReject(r) && !p.expectedReject(r) {
			out = append(out, unexpectedRejectRule.Result(fmt.Sprintf("Found an unexpected %s reject rule: %q", label, line), key))
		}
		if r.opt("-j", "--jump") == "DNAT" && netPortsInclude(r.opt("--dport", "--destination-port", "--dports", "--destination-ports"), p.port) {
			out = append(out, portConflict.Result(fmt.Sprintf("Potential %s rule conflict on port %d: %q", label, p.port, line), key))
		}
	}
	return out
}

// netParseIPTRule tokenises an iptables-save line the way NMA does: spaces
// split tokens except inside double quotes (the quotes stay), and "!"
// negates the value of the option that follows it.
func netParseIPTRule(table, line string) *netIPTRule {
	r := &netIPTRule{table: table, raw: line, opts: map[string][]string{}}
	toks := netSplitQuoted(line)
	neg := false
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t == "!" {
			neg = true
			continue
		}
		if !strings.HasPrefix(t, "-") {
			continue
		}
		val := ""
		if i+1 < len(toks) && !strings.HasPrefix(toks[i+1], "-") && toks[i+1] != "!" {
			val = toks[i+1]
			i++
		}
		if neg {
			val = "!" + val
			neg = false
		}
		switch t {
		case "-A", "--append":
			r.chain = val
		case "-m", "--match":
			r.matches = append(r.matches, val)
		}
		r.opts[t] = append(r.opts[t], val)
	}
	return r
}

func netSplitQuoted(s string) []string {
	var toks []string
	var cur strings.Builder
	inQ := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && inQ && i+1 < len(s):
			cur.WriteByte(c)
			cur.WriteByte(s[i+1])
			i++
		case c == '"':
			inQ = !inQ
			cur.WriteByte(c)
		case c == ' ' && !inQ:
			if cur.Len() > 0 {
				toks = append(toks, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		toks = append(toks, cur.String())
	}
	return toks
}

func netIsReject(r *netIPTRule) bool {
	for _, v := range []string{r.opt("-j", "--jump"), r.opt("-g", "--goto")} {
		if v == "REJECT" || v == "DROP" {
			return true
		}
	}
	return r.opt("--reject-with") != ""
}

// expectedReject is NMA's allow-list (P-N11) plus the chains of components
// that reject by design and that NMA does not know:
//   - Cilium's chains (CILIUM_*, and OLD_CILIUM_* during upgrades);
//   - kube-proxy's KUBE-PROXY-FIREWALL (loadBalancerSourceRanges in
//     iptables mode; NMA lists only the IPVS-mode KUBE-SOURCE-RANGES-FIREWALL);
//   - Docker's own chains (DOCKER, DOCKER-*), which isolate docker bridges.
func (p *netIPTables) expectedReject(r *netIPTRule) bool {
	if p.allowed[r.table+"/"+r.chain] {
		return true
	}
	comment := r.opt("--comment")
	switch r.chain {
	case "KUBE-FORWARD":
		if netHas(r.matches, "conntrack") && r.opt("--ctstate") == "INVALID" {
			return true
		}
	case "KUBE-FIREWALL":
		if strings.Contains(comment, "block incoming localnet connections") ||
			strings.Contains(comment, "kubernetes firewall for dropping marked packets") {
			return true
		}
	case "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES":
		if strings.Contains(comment, "has no endpoints") || strings.Contains(comment, "has no local endpoints") ||
			strings.Contains(r.opt("--reject-with"), "icmp-port-unreachable") {
			return true
		}
	case "KUBE-IPVS-FILTER", "KUBE-IPVS-OUT-FILTER", "KUBE-SOURCE-RANGES-FIREWALL", "KUBE-PROXY-FIREWALL", "DOCKER":
		return true
	case "FORWARD":
		if strings.Contains(comment, "Block Node Local Pod access") {
			return true
		}
	}
	for _, prefix := range []string{"cali-", "CILIUM_", "OLD_CILIUM_", "DOCKER-"} {
		if strings.HasPrefix(r.chain, prefix) {
			return true
		}
	}
	return false
}

func netHas(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// netPortsInclude reports whether a --dport value (a port, a "lo:hi" range,
// or a multiport list of those) covers port. NMA gave up on anything but a
// plain number; a range that covers the kubelet port conflicts as well. A
// negated match ("!10250") never covers it.
func netPortsInclude(spec string, port int) bool {
	if spec == "" || strings.HasPrefix(spec, "!") {
		return false
	}
	for _, part := range strings.Split(spec, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		// iptables lets either end of a range default: ":1024", "1024:".
		if isRange && lo == "" {
			lo = "0"
		}
		if isRange && hi == "" {
			hi = "65535"
		}
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		if a <= port && port <= b {
			return true
		}
	}
	return false
}
