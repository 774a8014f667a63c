package network

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// Interface flags from <linux/if.h>, as /sys/class/net/<if>/flags shows them.
const (
	netIffUp        = 0x1
	netIffBroadcast = 0x2
	netIffLoopback  = 0x8
	netIffRunning   = 0x40
	netIffMulticast = 0x1000
)

// netDefaultExcludedInterfaces are NMA's default exclusions (B4): tunnel and
// InfiniBand devices whose state says nothing about node networking.
var netDefaultExcludedInterfaces = []string{
	`^gre[0-9]+$`, `^gretap[0-9]+$`, `^erspan[0-9]+$`, `^ip6gre[0-9]+$`, `^ip6gretap[0-9]+$`,
	`^tunl[0-9]+$`, `^sit[0-9]+$`, `^ip6tnl[0-9]+$`, `^ib[0-9]+$`, `^ibp[0-9]+s[0-9]+(f[0-9]+)?$`,
}

var interfacesKind = probe.Kind{Name: "interfaces", Period: 5 * time.Minute}

type netInterfacesSettings struct {
	// ExcludedInterfaceNameRegexps replaces the default exclusions; an
	// explicitly empty list disables them (NMA's semantics). docker*
	// interfaces are always skipped, as NMA does: docker0 has no carrier
	// whenever no container uses it.
	ExcludedInterfaceNameRegexps []string `yaml:"excludedInterfaceNameRegexps"`
	// ConsistencyWindow is how old the previous observation of an
	// interface may be and still confirm the current one (NMA's cache
	// TTL).
	ConsistencyWindow time.Duration `yaml:"consistencyWindow"`
}

func (s netInterfacesSettings) Validate() error {
	_, err := s.excluded()
	return errors.Join(err, probe.Positive(map[string]time.Duration{"consistencyWindow": s.ConsistencyWindow}))
}

func (s netInterfacesSettings) excluded() ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	var errs []error
	for _, e := range s.ExcludedInterfaceNameRegexps {
		if e == "" {
			errs = append(errs, fmt.Errorf("excludedInterfaceNameRegexps: empty entry"))
			continue
		}
		re, err := regexp.Compile(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("excludedInterfaceNameRegexps: %w", err))
			continue
		}
		out = append(out, re)
	}
	return out, errors.Join(errs...)
}

type netInterfaces struct {
	probe.Base
	window   time.Duration
	excluded []*regexp.Regexp
	prev     map[string]netIfObservation
}

type netIfObservation struct {
	up, running bool
	at          time.Time
}

var (
	interfaceNotUp = interfacesKind.Reason(reason.Reason{
		Name: "InterfaceNotUp", Condition: finding.NetworkingReady, Severity: finding.Fatal,
		Description: "A network interface (broadcast and multicast capable, not docker*, not excluded by " +
			"probes.interfaces.excludedInterfaceNameRegexps) was administratively down on two consecutive checks less than " +
			"10 minutes apart (probes.interfaces.consistencyWindow). Nothing passes through it. The key is the interface.",
		Action: "Check the interface (ip link show <if>) and what took it down (journalctl -u systemd-networkd, the ENI " +
			"attachment in EC2). Bring it up or replace the node. An interface that is meant to be down can be excluded with " +
			"probes.interfaces.excludedInterfaceNameRegexps.",
	})
	interfaceNotRunning = interfacesKind.Reason(reason.Reason{
		Name: "InterfaceNotRunning", Condition: finding.NetworkingReady, Severity: finding.Fatal,
		Description: "A network interface is up but not running (no carrier; operstate neither up nor unknown) on two " +
			"consecutive checks less than 10 minutes apart: it is configured but carries no traffic. The key is the interface.",
		Action: "Check the link and its driver (ip link show <if>, ethtool <if>, the driver's messages in dmesg). Detach and " +
			"reattach the ENI or replace the node if the link does not come back.",
	})
	missingLoopbackInterface = interfacesKind.Reason(reason.Reason{
		Name: "MissingLoopbackInterface", Condition: finding.NetworkingReady, Severity: finding.Fatal,
		Description: "The host network namespace has no loopback interface. Everything that talks to localhost (the kubelet, " +
			"the container runtime, health checks) fails.",
		Action: "Find what removed it (a network configuration change or a CNI plugin error in the journal), then reboot " +
			"or replace the node.",
	})
)

func init() {
	defaults := netInterfacesSettings{ExcludedInterfaceNameRegexps: netDefaultExcludedInterfaces, ConsistencyWindow: 10 * time.Minute}
	probe.Register(interfacesKind, defaults, func(_ *probe.Env, b probe.Base, s netInterfacesSettings) (probe.Probe, error) {
		excluded, err := s.excluded()
		return &netInterfaces{Base: b, window: s.ConsistencyWindow, excluded: excluded, prev: map[string]netIfObservation{}}, err
	})
}

// Needs: a down or not-running interface counts only when the previous
// check saw it so too.
func (p *netInterfaces) Needs() probe.Needs { return probe.Needs{Checks: 2} }

// Check reads interfaces from sysfs rather than net.Interfaces so that it
// honours --root. sysfs "flags" holds dev->flags, which never carries
// IFF_RUNNING (the kernel computes it for SIOCGIFFLAGS and netlink), so
// running is derived the kernel's way: up and operstate "up" or "unknown"
// (netif_oper_up). Every offending interface is reported, where NMA stopped at
// the first one (B10 quirk 6).
func (p *netInterfaces) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	dir := host.Path(env.Root, "/sys/class/net")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	now := env.Now()
	var out []probe.Result
	loopback := false
	seen := map[string]bool{}
	for _, e := range ents {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		name := e.Name()
		flags, err := netIfFlags(filepath.Join(dir, name))
		if err != nil {
			// bonding_masters and interfaces that vanished while
			// listing have no readable flags.
			if !errors.Is(err, os.ErrNotExist) {
				env.Log.Debug("interfaces: unreadable flags", "if", name, "err", err)
			}
			continue
		}
		isLoop := flags&netIffLoopback != 0
		if isLoop {
			loopback = true
		}
		if strings.HasPrefix(name, "docker") {
			continue
		}
		// Point-to-point and other devices without broadcast and
		// multicast (ifb, tun, wireguard) are not node uplinks.
		if !isLoop && (flags&netIffMulticast == 0 || flags&netIffBroadcast == 0) {
			continue
		}
		if p.isExcluded(name) {
			continue
		}
		oper, _ := netReadTrim(filepath.Join(dir, name, "operstate"))
		cur := netIfObservation{up: flags&netIffUp != 0, at: now}
		cur.running = cur.up && (flags&netIffRunning != 0 || oper == "up" || oper == "unknown" || oper == "")
		seen[name] = true
		prev, ok := p.prev[name]
		p.prev[name] = cur
		// One bad observation is not enough: an interface being
		// configured is briefly down. The state must also have been
		// bad on the previous, still fresh, observation.
		if !ok || now.Sub(prev.at) > p.window {
			continue
		}
		mac, _ := netReadTrim(filepath.Join(dir, name, "address"))
		switch {
		case !cur.up && !prev.up:
			out = append(out, interfaceNotUp.Result(fmt.Sprintf("Interface Name: %q, MAC: %q is not up", name, mac), name))
		case cur.up && !cur.running && !prev.running:
			out = append(out, interfaceNotRunning.Result(fmt.Sprintf("Interface Name: %q, MAC: %q is not running (operstate %s)", name, mac, oper), name))
		}
	}
	for name := range p.prev {
		if !seen[name] {
			delete(p.prev, name)
		}
	}
	if !loopback {
		out = append(out, missingLoopbackInterface.Result("The loopback interface is missing from this instance. Without it, many services which depend on local connectivity will fail", ""))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (p *netInterfaces) isExcluded(name string) bool {
	for _, re := range p.excluded {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

func netIfFlags(dir string) (uint64, error) {
	s, err := netReadTrim(filepath.Join(dir, "flags"))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(s, 0, 64)
}
