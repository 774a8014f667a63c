package network

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// netENAStats maps the ENA driver's allowance counters to reasons. Each
// counts packets the instance dropped or queued for going over an EC2
// allowance.
var netENAStats = map[string]*reason.Reason{
	"bw_in_allowance_exceeded":     bandwidthInExceeded,
	"bw_out_allowance_exceeded":    bandwidthOutExceeded,
	"conntrack_allowance_exceeded": conntrackExceeded,
	"linklocal_allowance_exceeded": linkLocalExceeded,
	"pps_allowance_exceeded":       ppsExceeded,
}

// netENABursts are NMA's bucket sizes.
var netENABursts = map[string]int{
	"bw_in_allowance_exceeded":     180,
	"bw_out_allowance_exceeded":    100,
	"conntrack_allowance_exceeded": 100,
	"linklocal_allowance_exceeded": 100,
	"pps_allowance_exceeded":       320,
}

// netEthtoolPartial is the exit status NMA tolerates from "ethtool -S"; the
// statistics it printed before failing are still used.
const netEthtoolPartial = 94

var enaKind = probe.Kind{Name: "ena-allowances", Period: 5 * time.Minute}

type netENASettings struct {
	// Bursts overrides the bucket size per counter.
	Bursts map[string]int `yaml:"bursts"`
	// RefillEvery is how often one token returns to each bucket.
	RefillEvery time.Duration `yaml:"refillEvery"`
	// Timeout bounds each ethtool run.
	Timeout time.Duration `yaml:"timeout"`
}

func (s netENASettings) Validate() error {
	_, err := netBursts(netENABursts, s.Bursts)
	return errors.Join(err, probe.Positive(map[string]time.Duration{"refillEvery": s.RefillEvery, "timeout": s.Timeout}))
}

type netENA struct {
	probe.Base
	refill, timeout time.Duration
	bursts          map[string]int
	// counters persist across polls, keyed by interface then stat.
	counters map[string]map[string]*netCounter
}

var (
	bandwidthInExceeded = enaKind.Reason(reason.Reason{
		Name: "BandwidthInExceeded", Condition: finding.NetworkingReady, Severity: finding.Warning,
		Description: "The ENA driver counted packets queued or dropped because the instance exceeded its inbound aggregate " +
			"bandwidth allowance (bw_in_allowance_exceeded in ethtool -S), faster than the allowed burst " +
			"(probes.ena-allowances.bursts). EC2 shapes the traffic, not the node. The key is the interface.",
		Action: "Spread the inbound load over more nodes or move to an instance type with more network bandwidth.",
	})
	bandwidthOutExceeded = enaKind.Reason(reason.Reason{
		Name: "BandwidthOutExceeded", Condition: finding.NetworkingReady, Severity: finding.Warning,
		Description: "The ENA driver counted packets queued or dropped because the instance exceeded its outbound aggregate " +
			"bandwidth allowance (bw_out_allowance_exceeded), faster than the allowed burst (probes.ena-allowances.bursts). " +
			"The key is the interface.",
		Action: "Spread the outbound load over more nodes or move to an instance type with more network bandwidth.",
	})
	conntrackExceeded = enaKind.Reason(reason.Reason{
		Name: "ConntrackExceeded", Condition: finding.NetworkingReady, Severity: finding.Warning,
		Description: "The ENA driver counted packets dropped because the instance's connection tracking allowance was " +
			"exhausted (conntrack_allowance_exceeded), faster than the allowed burst: new connections fail. This is EC2's " +
			"security group tracking, not the kernel's conntrack table (ConntrackExceededKernel). The key is the interface.",
		Action: "Reduce the number of tracked connections (reuse connections, shorten idle timeouts) or move to a larger " +
			"instance type.",
	})
	linkLocalExceeded = enaKind.Reason(reason.Reason{
		Name: "LinkLocalExceeded", Condition: finding.NetworkingReady, Severity: finding.Warning,
		Description: "The ENA driver counted packets dropped because traffic to link-local services (the Amazon DNS " +
			"resolver, instance metadata, Time Sync) exceeded its packets-per-second allowance (linklocal_allowance_exceeded). " +
			"DNS lookups from the node's pods fail intermittently. The key is the interface.",
		Action: "Cache DNS on the node (NodeLocal DNSCache) and reduce instance metadata calls (SDK credential caching).",
	})
	ppsExceeded = enaKind.Reason(reason.Reason{
		Name: "PPSExceeded", Condition: finding.NetworkingReady, Severity: finding.Warning,
		Description: "The ENA driver counted packets queued or dropped because the instance exceeded its packets-per-second " +
			"allowance (pps_allowance_exceeded), faster than the allowed burst. The key is the interface.",
		Action: "Send fewer, larger packets, spread the load over more nodes, or move to a larger instance type.",
	})
)

func init() {
	probe.Register(enaKind, netENASettings{RefillEvery: 10 * time.Minute, Timeout: 10 * time.Second}, func(_ *probe.Env, b probe.Base, s netENASettings) (probe.Probe, error) {
		bursts, _ := netBursts(netENABursts, s.Bursts)
		return &netENA{Base: b, refill: s.RefillEvery, timeout: s.Timeout, bursts: bursts,
			counters: map[string]map[string]*netCounter{}}, nil
	})
}

// Needs: a counter's first reading is only a baseline, and ethtool asks
// the interfaces of the daemon's network namespace, not --root's.
func (p *netENA) Needs() probe.Needs {
	return probe.Needs{Checks: 2, LiveHost: "ethtool statistics of the interfaces in nodehealthd's network namespace"}
}

// Check reads "ethtool -S" for each ENA interface. ethtool's text output is
// used rather than the ETHTOOL_GSTATS ioctl because it is what NMA reads and
// it can be replayed in tests; only interfaces bound to the ena driver are
// asked, so veths and other drivers cost nothing.
func (p *netENA) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	ifs, err := netENAInterfaces(env.Root)
	if err != nil {
		return nil, err
	}
	now := env.Now()
	var out []probe.Result
	var failures []string
	var firstErr error
	seen := map[string]bool{}
	for _, ifname := range ifs {
		b, err := netRun(ctx, env, p.timeout, "ethtool", "-S", ifname)
		if err != nil {
			if code, ok := netExitCode(err); !ok || code != netEthtoolPartial {
				failures = append(failures, fmt.Sprintf("%s: %v", ifname, err))
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
		}
		seen[ifname] = true
		stats := netParseEthtoolStats(b)
		cs := p.counters[ifname]
		if cs == nil {
			cs = map[string]*netCounter{}
			p.counters[ifname] = cs
		}
		for stat, decl := range netENAStats {
			v, ok := stats[stat]
			if !ok {
				continue
			}
			c := cs[stat]
			if c == nil {
				// The first sighting is the baseline: what the
				// counter gathered before we started is history.
				cs[stat] = newNetCounter(v, p.refill, p.bursts[stat])
				continue
			}
			if old, exceeded := c.observe(now, v); exceeded {
				out = append(out, decl.Result(fmt.Sprintf("%s increased on interface %q from %d to %d", stat, ifname, old, v), ifname))
			}
		}
	}
	for ifname := range p.counters {
		if !netHas(ifs, ifname) {
			delete(p.counters, ifname)
		}
	}
	if len(failures) > 0 && len(seen) == 0 {
		// Wrap one cause so that "ethtool is not installed" stays
		// recognisable to callers.
		return nil, fmt.Errorf("ethtool on every ENA interface failed (%s): %w", strings.Join(failures, "; "), firstErr)
	}
	for _, f := range failures {
		env.Log.Warn("ena-allowances: ethtool failed", "err", f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return out[i].Reason < out[j].Reason
	})
	return out, nil
}

// netENAInterfaces lists interfaces whose device is bound to the ena
// driver (the device/driver symlink's target ends in "ena").
func netENAInterfaces(root string) ([]string, error) {
	dir := host.Path(root, "/sys/class/net")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name(), "device", "driver"))
		if err == nil && filepath.Base(target) == "ena" {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// netParseEthtoolStats parses "ethtool -S" output: a "NIC statistics:"
// header, then "name: value" lines.
func netParseEthtoolStats(b []byte) map[string]uint64 {
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		out[strings.TrimSpace(k)] = n
	}
	return out
}
