package network

// Helpers shared by the NetworkingReady probes. The "net" prefix of
// package-level names is left from when every probe shared package probe.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"golang.org/x/time/rate"

	"github.com/nodehealthd/nodehealthd/internal/host"
)

// netVPCCNIPods returns the aws-node pod log directories that show the VPC
// CNI is installed: NMA's test is a directory under /var/log/pods whose name
// holds "_aws-node-" and that has an aws-vpc-cni-init child (the init
// container only the VPC CNI's aws-node pod runs, so Cilium's or Calico's
// node agents never match). The names let callers notice that the CNI pod was
// replaced. A missing /var/log/pods means no CNI pod ran here.
func netVPCCNIPods(root string) ([]string, error) {
	dir := host.Path(root, "/var/log/pods")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pods []string
	for _, e := range ents {
		if !strings.Contains(e.Name(), "_aws-node-") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, e.Name(), "aws-vpc-cni-init"))
		if err == nil && fi.IsDir() {
			pods = append(pods, e.Name())
		}
	}
	slices.Sort(pods)
	return pods, nil
}

// netReadTrim reads a small file and trims surrounding white space.
func netReadTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// netExitCode returns the exit status carried by a command error
// (*exec.ExitError and test doubles both have ExitCode).
func netExitCode(err error) (int, bool) {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode(), true
	}
	return 0, false
}

// netRun runs a command through env.Run, bounded by timeout even when the
// caller's context allows more.
func netRun(ctx context.Context, env *probe.Env, timeout time.Duration, name string, args ...string) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return env.Run(cctx, name, args...)
}

// netCounter tracks one cumulative counter: a baseline that persists across
// polls and a token bucket that absorbs ordinary growth, so that only a burst
// above what the bucket allows is reported. NMA rebuilt this state on every
// poll (B10 quirk 1), which left its ENA reasons dead; here it lives as long
// as the probe.
type netCounter struct {
	last    uint64
	limiter *rate.Limiter
}

func newNetCounter(first uint64, every time.Duration, burst int) *netCounter {
	return &netCounter{last: first, limiter: rate.NewLimiter(rate.Every(every), burst)}
}

// observe records v and reports whether the growth since the last value
// exceeds what the bucket can supply at now. A counter that went down was
// reset (driver reload, device reset): it becomes the new baseline and is
// not reported, where unsigned arithmetic would have wrapped (B10 quirk 9).
func (c *netCounter) observe(now time.Time, v uint64) (old uint64, exceeded bool) {
	old = c.last
	c.last = v
	if v <= old {
		return old, false
	}
	delta := v - old
	if delta > uint64(c.limiter.Burst()) {
		return old, true
	}
	// AllowN only takes tokens when they are all there, so a refused
	// burst does not also drain the bucket (NMA's semantics).
	return old, !c.limiter.AllowN(now, int(min(delta, math.MaxInt32)))
}

// netHash is a short stable hash for keys built from long text (rules).
func netHash(parts ...string) string {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// netBursts validates a per-counter burst override map against the known
// counters and merges it over the defaults.
func netBursts(defaults, override map[string]int) (map[string]int, error) {
	out := map[string]int{}
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range override {
		if _, ok := defaults[k]; !ok {
			known := make([]string, 0, len(defaults))
			for d := range defaults {
				known = append(known, d)
			}
			slices.Sort(known)
			return nil, fmt.Errorf("bursts: unknown counter %q (known: %s)", k, strings.Join(known, ", "))
		}
		if v <= 0 {
			return nil, fmt.Errorf("bursts: %s must be positive", k)
		}
		out[k] = v
	}
	return out, nil
}

// netIPAMAllocation is one row of ipamd's checkpoint.
type netIPAMAllocation struct {
	NetworkName string `json:"networkName"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	IPv4        string `json:"ipv4"`
	IPv6        string `json:"ipv6"`
	Metadata    struct {
		Namespace string `json:"k8sPodNamespace"`
		Name      string `json:"k8sPodName"`
	} `json:"metadata"`
}

// pod names the allocation's pod for messages, or its sandbox when the
// checkpoint predates pod metadata.
func (a netIPAMAllocation) pod() string {
	if a.Metadata.Name != "" {
		return a.Metadata.Namespace + "/" + a.Metadata.Name
	}
	return "sandbox " + a.ContainerID
}

// netReadIPAMCheckpoint reads ipamd's allocation checkpoint
// (vpc-cni-ipam/1). NMA asks ipamd's introspection endpoint for the same
// data; the checkpoint is what ipamd itself restores from, it works under
// --root and in fixture tests, and it needs no open port. found is false when
// neither location exists (ipamd has not started yet).
func netReadIPAMCheckpoint(root string) (allocs []netIPAMAllocation, found bool, err error) {
	for _, p := range []string{"/var/run/aws-node/ipam.json", "/run/aws-node/ipam.json"} {
		b, err := os.ReadFile(host.Path(root, p))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		var cp struct {
			Version     string              `json:"version"`
			Allocations []netIPAMAllocation `json:"allocations"`
		}
		if err := json.Unmarshal(b, &cp); err != nil {
			return nil, false, fmt.Errorf("%s: %w", p, err)
		}
		if !strings.HasPrefix(cp.Version, "vpc-cni-ipam/") {
			return nil, false, fmt.Errorf("%s: unknown checkpoint version %q", p, cp.Version)
		}
		return cp.Allocations, true, nil
	}
	return nil, false, nil
}
