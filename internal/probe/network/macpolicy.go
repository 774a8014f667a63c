package network

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

var macPolicyKind = probe.Kind{Name: "mac-address-policy", Period: 5 * time.Minute}

type netMACPolicySettings struct {
	// Timeout bounds each networkctl and systemd-analyze run.
	Timeout time.Duration `yaml:"timeout"`
}

func (s netMACPolicySettings) Validate() error {
	return probe.Positive(map[string]time.Duration{"timeout": s.Timeout})
}

type netMACPolicy struct {
	probe.Base
	timeout time.Duration
}

var macAddressPolicyMisconfigured = macPolicyKind.Reason(reason.Reason{
	Name: "MACAddressPolicyMisconfigured", Condition: finding.NetworkingReady, Severity: finding.Warning,
	Description: "On Ubuntu with the VPC CNI, a systemd .link file that applies to the node's interfaces sets " +
		"MACAddressPolicy to something other than none (Ubuntu's default is persistent), so udev rewrites the MAC " +
		"addresses of the veths the CNI creates and pod networking breaks. The key is the .link file.",
	Action: "Add a drop-in for that .link file setting MACAddressPolicy=none (systemd-analyze cat-config <file> shows the " +
		"merged result) and recreate the affected pods.",
})

func init() {
	probe.Register(macPolicyKind, netMACPolicySettings{Timeout: 10 * time.Second}, func(env *probe.Env, b probe.Base, s netMACPolicySettings) (probe.Probe, error) {
		// Ubuntu's 99-default.link sets MACAddressPolicy=persistent,
		// which makes udev rewrite the MAC of the veths the VPC CNI
		// creates; other distributions ship "none".
		if !env.Tags["ubuntu"] {
			return nil, nil
		}
		return &netMACPolicy{Base: b, timeout: s.Timeout}, nil
	})
}

// Needs: networkctl and systemd-analyze answer for the running host.
func (p *netMACPolicy) Needs() probe.Needs {
	return probe.Needs{LiveHost: "networkctl and systemd-analyze of the running host"}
}

// Check asks systemd-networkd which .link file applies to each interface,
// then has systemd-analyze merge each file with its drop-ins, so the value
// checked is the one udev uses. Every offending file is reported (NMA
// stopped at the first).
func (p *netMACPolicy) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	pods, err := netVPCCNIPods(env.Root)
	if err != nil {
		return nil, err
	}
	if len(pods) == 0 {
		return nil, nil
	}
	b, err := netRun(ctx, env, p.timeout, "networkctl", "--json=short")
	if err != nil {
		return nil, fmt.Errorf("networkctl: %w", err)
	}
	var nc struct {
		Interfaces []struct {
			Name     string `json:"Name"`
			LinkFile string `json:"LinkFile"`
		} `json:"Interfaces"`
	}
	if err := json.Unmarshal(b, &nc); err != nil {
		return nil, fmt.Errorf("networkctl: %w", err)
	}
	files := map[string]bool{}
	for _, i := range nc.Interfaces {
		if i.LinkFile != "" {
			files[i.LinkFile] = true
		}
	}
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	var out []probe.Result
	for _, f := range names {
		cfg, err := netRun(ctx, env, p.timeout, "systemd-analyze", "cat-config", f)
		if err != nil {
			return nil, fmt.Errorf("systemd-analyze cat-config %s: %w", f, err)
		}
		v, set := netLastMACPolicy(cfg)
		if set && v != "" && v != "none" {
			out = append(out, macAddressPolicyMisconfigured.Result(fmt.Sprintf("MACAddressPolicy in %s is set to %q instead of 'none', which may cause network issues", f, v), f))
		}
	}
	return out, nil
}

// netLastMACPolicy returns the last MACAddressPolicy= assignment in the
// [Link] sections of merged unit-file text (later drop-ins override
// earlier ones, and an empty assignment resets it to the default).
func netLastMACPolicy(text []byte) (string, bool) {
	val, set := "", false
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section != "[Link]" || strings.TrimSpace(k) != "MACAddressPolicy" {
			continue
		}
		val, set = strings.TrimSpace(v), true
	}
	return val, set
}
