package network

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

var sysctlKind = probe.Kind{Name: "network-sysctl", Period: 5 * time.Minute}

type netSysctlSettings struct {
	// Expected adds sysctls (dotted or slash form, e.g.
	// net.ipv6.conf.all.forwarding) and the value each must have, or
	// overrides the default net.ipv4.ip_forward: 1.
	Expected map[string]string `yaml:"expected"`
}

func (s netSysctlSettings) Validate() error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(s.Expected)) {
		if !netSysctlName.MatchString(k) {
			errs = append(errs, fmt.Errorf("expected: bad sysctl name %q", k))
		}
	}
	return errors.Join(errs...)
}

// netSysctlName allows dotted and slash-separated names; ".." and absolute
// paths cannot escape /proc/sys.
var netSysctlName = regexp.MustCompile(`^[A-Za-z0-9_-]+([./][A-Za-z0-9_-]+)*$`)

type netSysctl struct {
	probe.Base
	want map[string]string
}

var networkSysctl = sysctlKind.Reason(reason.Reason{
	Name: "NetworkSysctl", Condition: finding.NetworkingReady, Severity: finding.Warning,
	Description: "A network sysctl differs from its expected value: net.ipv4.ip_forward must be 1 for pods to reach " +
		"anything beyond the node, and probes.network-sysctl.expected adds others. The key is the sysctl.",
	Action: "Find what changed it (a sysctl.d drop-in, a hardening script) and restore the value (sysctl -w, persisted in " +
		"/etc/sysctl.d).",
})

func init() {
	probe.Register(sysctlKind, netSysctlSettings{}, func(_ *probe.Env, b probe.Base, s netSysctlSettings) (probe.Probe, error) {
		p := &netSysctl{Base: b, want: map[string]string{"net.ipv4.ip_forward": "1"}}
		for k, v := range s.Expected {
			p.want[k] = strings.TrimSpace(v)
		}
		return p, nil
	})
}

func (p *netSysctl) Needs() probe.Needs { return probe.Needs{} }

// Check reports every sysctl whose value differs from the expected one
// (pods cannot leave the node without ip_forward). A sysctl that cannot be
// read fails the check instead of passing silently: a typo in the config
// should be seen, not taken for a healthy value.
func (p *netSysctl) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	names := make([]string, 0, len(p.want))
	for k := range p.want {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []probe.Result
	for _, name := range names {
		path := name
		if !strings.Contains(path, "/") {
			path = strings.ReplaceAll(path, ".", "/")
		}
		got, err := netReadTrim(host.Path(env.Root, "/proc/sys/"+path))
		if err != nil {
			return nil, fmt.Errorf("sysctl %s: %w", name, err)
		}
		// Multi-value sysctls (tcp_rmem) separate fields by tabs; compare
		// them field by field so that spacing in the config is free.
		if strings.Join(strings.Fields(got), " ") != strings.Join(strings.Fields(p.want[name]), " ") {
			out = append(out, networkSysctl.Result(fmt.Sprintf("A network related sysctl parameter may be misconfigured: %s is %q, expected %q", name, got, p.want[name]), name))
		}
	}
	return out, nil
}
