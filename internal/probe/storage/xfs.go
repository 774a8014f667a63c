package storage

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/prometheus/procfs"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// xfsFreeSpaceConfig is probes.xfs-free-space.
var xfsFreeSpace = probe.Kind{Name: "xfs-free-space", Period: 10 * time.Minute}

type xfsFreeSpaceSettings struct {
	// Threshold: an average free extent smaller than this many blocks
	// fires.
	Threshold float64 `yaml:"threshold"`
	// Command is the xfs_db binary (looked up in PATH).
	Command string `yaml:"command"`
}

func (s xfsFreeSpaceSettings) Validate() error {
	if s.Threshold <= 0 || s.Command == "" {
		return fmt.Errorf("threshold %v, command %q: want a positive threshold and a command", s.Threshold, s.Command)
	}
	return nil
}

type xfsFreeSpaceProbe struct {
	probe.Base
	xfsFreeSpaceSettings

	mu sync.Mutex
	// last holds the previous check's result per device, repeated when a
	// device cannot be read this time so that a transient xfs_db failure
	// neither raises nor clears anything for it.
	last map[string]probe.Result
}

// xfsAverageRE is NMA's pattern P-S6 for `freesp -s` output.
var xfsAverageRE = regexp.MustCompile(`average free extent size ([-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?)`)

var xfsSmallAverageClusterSize = xfsFreeSpace.Reason(reason.Reason{
	Name: "XFSSmallAverageClusterSize", Condition: finding.StorageReady, Severity: finding.Warning,
	Description: "An XFS filesystem's average free extent is below 16 blocks (probes.xfs-free-space.threshold; xfs_db " +
		"freesp -s): free space is so fragmented that XFS may fail to allocate inodes and creating files fails with " +
		"ENOSPC although space is left. The key is the device.",
	Action: "Free space on the filesystem (unused images, logs, emptyDir data), defragment free space with xfs_fsr, or " +
		"grow the volume; for the root filesystem, replacing the node is often simplest.",
})

func init() {
	probe.Register(xfsFreeSpace, xfsFreeSpaceSettings{Threshold: 16, Command: "xfs_db"}, func(_ *probe.Env, b probe.Base, s xfsFreeSpaceSettings) (probe.Probe, error) {
		return &xfsFreeSpaceProbe{Base: b, xfsFreeSpaceSettings: s}, nil
	})
}

func (p *xfsFreeSpaceProbe) Needs() probe.Needs { return probe.Needs{} }

// xfsMount is one XFS filesystem to inspect.
type xfsMount struct{ source, mountPoint string }

// xfsMounts lists the host's XFS filesystems, one per device. The host's
// view is PID 1's mount table: our own (/proc/self) is a container's when
// nodehealthd runs in one. /proc/self is the fallback where PID 1's is not
// readable (a fixture tree, a restricted PID namespace).
func xfsMounts(env *probe.Env) ([]xfsMount, error) {
	fs, err := probe.HostProcFS(env)
	if err != nil {
		return nil, err
	}
	mounts, err := fs.GetProcMounts(1)
	if err != nil {
		var serr error
		if mounts, serr = fs.GetMounts(); serr != nil {
			return nil, errors.Join(err, serr)
		}
	}
	return uniqueXFS(mounts), nil
}

func uniqueXFS(mounts []*procfs.MountInfo) []xfsMount {
	seen := map[string]bool{}
	var out []xfsMount
	for _, m := range mounts {
		if m.FSType != "xfs" || seen[m.Source] {
			continue
		}
		seen[m.Source] = true
		out = append(out, xfsMount{source: m.Source, mountPoint: m.MountPoint})
	}
	return out
}

// Check runs `xfs_db -r -c "freesp -s"` on every XFS device: a small
// average free extent means free space is so fragmented that XFS may fail
// to allocate inode chunks (ENOSPC with free space left).
func (p *xfsFreeSpaceProbe) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	mounts, err := xfsMounts(env)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []probe.Result
	var errs []error
	cur := map[string]probe.Result{}
	for _, m := range mounts {
		dev := host.Path(env.Root, m.source)
		avg, err := p.average(ctx, env, dev)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.source, err))
			if r, ok := p.last[m.source]; ok {
				cur[m.source] = r
				out = append(out, r)
			}
			continue
		}
		if avg >= p.Threshold {
			continue
		}
		r := xfsSmallAverageClusterSize.Result(
			fmt.Sprintf("The XFS Average Cluster size is small, which may prevent new files from being created due to free space fragmentation (%s on %s: average free extent %.1f blocks)",
				m.source, m.mountPoint, avg),
			m.source)
		cur[m.source] = r
		out = append(out, r)
	}
	p.last = cur
	if len(errs) > 0 && len(errs) == len(mounts) {
		return nil, errors.Join(errs...)
	}
	if len(errs) > 0 && env.Log != nil {
		env.Log.Warn("some XFS filesystems could not be inspected", "probe", p.Name(), "err", errors.Join(errs...))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (p *xfsFreeSpaceProbe) average(ctx context.Context, env *probe.Env, dev string) (float64, error) {
	out, err := env.Run(ctx, p.Command, "-r", "-c", "freesp -s", dev)
	if err != nil {
		return 0, err
	}
	m := xfsAverageRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("xfs_db printed no average free extent size")
	}
	return strconv.ParseFloat(string(m[1]), 64)
}
