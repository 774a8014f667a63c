package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// netSandboxes answers which IPs the container runtime gave a pod sandbox.
// The daemon asks containerd over CRI (net_cri.go); tests use a fake.
type netSandboxes interface {
	SandboxIPs(ctx context.Context, id string) ([]string, error)
}

var ipamdKind = probe.Kind{Name: "ipamd", Period: 5 * time.Minute}

type netIPAMDSettings struct {
	// Window is how close together two not-running observations must be
	// to report IPAMDNotRunning (NMA's 15 minutes).
	Window time.Duration `yaml:"window"`
	// Process is the ipamd process name looked for in /proc.
	Process string `yaml:"process"`
	// Unit is ipamd's systemd service on EKS Auto Mode nodes.
	Unit string `yaml:"unit"`
	// InconsistentState turns the CRI comparison on or off.
	InconsistentState bool `yaml:"inconsistentState"`
	// CacheFor is how long a sandbox's CRI answer is reused.
	CacheFor time.Duration `yaml:"cacheFor"`
}

func (s netIPAMDSettings) Validate() error {
	var errs []error
	if s.Process == "" || s.Unit == "" {
		errs = append(errs, fmt.Errorf("process %q, unit %q: want both set", s.Process, s.Unit))
	}
	return errors.Join(append(errs, probe.Positive(map[string]time.Duration{"window": s.Window, "cacheFor": s.CacheFor}))...)
}

type netIPAMD struct {
	probe.Base
	window, cacheFor time.Duration
	process, unit    string
	auto             bool
	// processesLiveHost is Env.processesLiveHost where the probe was
	// built.
	processesLiveHost string
	units             netUnits
	sandboxes         netSandboxes // nil: IPAMDInconsistentState off

	pods       []string // aws-node pods last seen; nil before the first check
	lastDown   time.Time
	sandboxIPs map[string]netSandboxAnswer
}

type netSandboxAnswer struct {
	ips []string
	at  time.Time
}

var (
	ipamdNotRunning = ipamdKind.Reason(reason.Reason{
		Name: "IPAMDNotRunning", Condition: finding.NetworkingReady, Severity: finding.Fatal,
		Description: "The AWS VPC CNI is installed (an aws-node pod ran on this node) but its IP address manager, ipamd " +
			"(process aws-k8s-agent; ipamd.service on EKS Auto Mode), was not running on two checks less than 15 minutes " +
			"apart (probes.ipamd.window). New pods get no IP address.",
		Action: "Check the aws-node pod (kubectl -n kube-system describe pod / logs -c aws-node) and " +
			"/var/log/aws-routed-eni/ipamd.log, or journalctl -u ipamd on Auto Mode; fix the cause (image pull, IAM " +
			"permissions, API server access) or replace the node.",
	})
	ipamdInconsistentState = ipamdKind.Reason(reason.Reason{
		Name: "IPAMDInconsistentState", Condition: finding.NetworkingReady, Severity: finding.Warning,
		Description: "ipamd's checkpoint (/var/run/aws-node/ipam.json) gives a pod an IP address that the container runtime " +
			"(CRI PodSandboxStatus) does not report for that pod's sandbox, so traffic for the pod can reach the wrong pod " +
			"or nothing. The key is the sandbox ID.",
		Action: "Compare the pod's IP (kubectl get pod -o wide) with the message; delete the affected pod so that it gets a " +
			"fresh address, and restart the aws-node pod if several pods are affected. probes.ipamd.inconsistentState: false " +
			"switches the comparison off.",
	})
)

func init() {
	defaults := netIPAMDSettings{Window: 15 * time.Minute, CacheFor: 2 * time.Hour, Process: "aws-k8s-agent", Unit: "ipamd.service",
		InconsistentState: true}
	probe.Register(ipamdKind, defaults, func(env *probe.Env, b probe.Base, s netIPAMDSettings) (probe.Probe, error) {
		p := &netIPAMD{Base: b, window: s.Window, cacheFor: s.CacheFor, process: s.Process, unit: s.Unit,
			auto: env.Tags["eks-auto"], processesLiveHost: env.ProcessesLiveHost(), sandboxIPs: map[string]netSandboxAnswer{}}
		if p.auto {
			p.units = newNetDBusUnits(env.Root)
		}
		if s.InconsistentState {
			p.sandboxes = newNetCRI(host.Path(env.Root, "/run/containerd/containerd.sock"))
		}
		return p, nil
	})
}

// Needs: ipamd must be seen not running on two checks; off Auto Mode the
// first check of an aws-node pod only notes it, so that is three.
func (p *netIPAMD) Needs() probe.Needs {
	if p.auto {
		return probe.Needs{Checks: 2}
	}
	return probe.Needs{Checks: 3, LiveHost: p.processesLiveHost}
}

func (p *netIPAMD) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	var running bool
	if p.auto {
		// Auto Mode runs ipamd as a systemd service, without an aws-node
		// pod to detect.
		st, err := p.units.UnitState(ctx, p.unit)
		if err != nil {
			return nil, err
		}
		running = st.ActiveState == "active"
	} else {
		pods, err := netVPCCNIPods(env.Root)
		if err != nil {
			return nil, err
		}
		if len(pods) == 0 {
			p.pods, p.lastDown = nil, time.Time{}
			return nil, nil
		}
		// A new aws-node pod (first sighting, upgrade, restart) starts
		// ipamd afresh: give it a cycle before judging.
		if p.pods == nil || !slices.Equal(p.pods, pods) {
			p.pods, p.lastDown = pods, time.Time{}
			return nil, nil
		}
		running, err = p.processRunning(ctx, env)
		if err != nil {
			return nil, err
		}
	}
	now := env.Now()
	if !running {
		// Two not-running observations within the window report; one
		// alone (ipamd restarting) does not. Seeing ipamd run resets
		// the window, which NMA never did (B10 quirk 8), so one blip
		// long ago no longer turns the next blip into an alarm.
		prev := p.lastDown
		p.lastDown = now
		if prev.IsZero() || now.Sub(prev) > p.window {
			return nil, nil
		}
		return []probe.Result{ipamdNotRunning.Result("The AWS VPC CNI was detected on this node but IPAMD was not found running", "")}, nil
	}
	p.lastDown = time.Time{}
	if p.sandboxes == nil {
		return nil, nil
	}
	return p.inconsistent(ctx, env)
}

// processRunning looks for ipamd among the host's processes (comm is the
// executable's name cut to 15 bytes; aws-k8s-agent fits).
func (p *netIPAMD) processRunning(ctx context.Context, env *probe.Env) (bool, error) {
	procs, err := env.Processes(ctx, false)
	if err != nil {
		return false, err
	}
	for _, pr := range procs {
		if strings.Contains(pr.Comm, p.process) {
			return true, nil
		}
	}
	return false, nil
}

// inconsistent compares each pod IP in ipamd's checkpoint with the IP the
// runtime reports for the pod's sandbox, and reports every conflicting pod
// (NMA stopped at the first). A sandbox the runtime no longer knows is
// skipped: the pod is being torn down and ipamd has not caught up yet.
func (p *netIPAMD) inconsistent(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	allocs, found, err := netReadIPAMCheckpoint(env.Root)
	if err != nil || !found {
		return nil, err
	}
	now := env.Now()
	var out []probe.Result
	live := map[string]bool{}
	for _, a := range allocs {
		if a.ContainerID == "" || (a.IPv4 == "" && a.IPv6 == "") {
			continue
		}
		live[a.ContainerID] = true
		ans, ok := p.sandboxIPs[a.ContainerID]
		if !ok || now.Sub(ans.at) > p.cacheFor {
			ips, err := p.sandboxes.SandboxIPs(ctx, a.ContainerID)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				env.Log.Debug("ipamd: sandbox status", "sandbox", a.ContainerID, "err", err)
				delete(p.sandboxIPs, a.ContainerID)
				continue
			}
			// A pod's IPs never change during its life, so the answer
			// can be reused (NMA caches it for 2 hours as well).
			ans = netSandboxAnswer{ips: ips, at: now}
			p.sandboxIPs[a.ContainerID] = ans
		}
		if len(ans.ips) == 0 {
			continue // host-network or not yet networked
		}
		if !netSameIP(ans.ips, a.IPv4) && !netSameIP(ans.ips, a.IPv6) {
			out = append(out, ipamdInconsistentState.Result(fmt.Sprintf("Internal IPAMD state has conflicting IP addresses for pod %s (ipamd: %s, runtime: %s)",
				a.pod(), strings.Trim(a.IPv4+","+a.IPv6, ","), strings.Join(ans.ips, ",")), a.ContainerID))
		}
	}
	for id := range p.sandboxIPs {
		if !live[id] {
			delete(p.sandboxIPs, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// netSameIP reports whether ip is among ips, comparing addresses rather
// than text (IPv6 has many spellings).
func netSameIP(ips []string, ip string) bool {
	want, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	for _, s := range ips {
		if got, err := netip.ParseAddr(s); err == nil && got.Unmap() == want.Unmap() {
			return true
		}
	}
	return false
}
