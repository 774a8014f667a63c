package storage

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

var ioDelaysKind = probe.Kind{Name: "io-delays", Period: 10 * time.Minute}

// ioDelaysSettings is probes.io-delays.
type ioDelaysSettings struct {
	// ThresholdTicks: a process that spent at least this many clock ticks
	// (1/100 s) waiting for block I/O since the previous check fires.
	ThresholdTicks uint64 `yaml:"thresholdTicks"`
}

func (s ioDelaysSettings) Validate() error {
	return probe.Positive(map[string]uint64{"thresholdTicks": s.ThresholdTicks})
}

type ioDelaysProbe struct {
	probe.Base
	threshold uint64
	liveHost  string

	mu sync.Mutex
	// last is delayacct_blkio_ticks per process at the previous check.
	last map[ioDelayKey]uint64
}

// ioDelayKey names a process across checks: the start time tells a PID
// reused by a later process from the one seen before (NMA keys on
// pid-comm, which a reused PID running the same command shares).
type ioDelayKey struct {
	pid       int
	starttime uint64
}

// clockTicksPerSecond is USER_HZ, which the kernel fixes at 100 for
// /proc on every architecture Kubernetes nodes run.
const clockTicksPerSecond = 100

var ioDelays = ioDelaysKind.Reason(reason.Reason{
	Name: "IODelays", Condition: finding.StorageReady, Severity: finding.Warning,
	Description: "A process spent at least 10 s (probes.io-delays.thresholdTicks, in 1/100 s) waiting for block I/O since the " +
		"previous check (delayacct_blkio_ticks): its disk is too slow for the load. On kernel 5.14 and later the count " +
		"needs delay accounting (kernel.task_delayacct=1). The key names the PID and command.",
	Action: "Check the device's latency and queue (iostat -x, the volume's CloudWatch metrics, any EBS*Exceeded finding); " +
		"raise the volume's IOPS or throughput, spread or move the I/O-heavy workload, or use instance storage.",
})

func init() {
	probe.Register(ioDelaysKind, ioDelaysSettings{ThresholdTicks: 1000}, func(env *probe.Env, b probe.Base, s ioDelaysSettings) (probe.Probe, error) {
		return &ioDelaysProbe{Base: b, threshold: s.ThresholdTicks, liveHost: env.ProcessesLiveHost()}, nil
	})
}

// Needs: a process's first reading is only a baseline.
func (p *ioDelaysProbe) Needs() probe.Needs { return probe.Needs{Checks: 2, LiveHost: p.liveHost} }

// Check compares every process's cumulative block-I/O delay with the
// previous check. A process seen for the first time only sets its
// baseline, so a long-lived process's lifetime total is never reported as
// if it had just happened. (Kernels ≥ 5.14 count these ticks only with
// delay accounting on: kernel.task_delayacct=1 or the delayacct boot
// option; otherwise they stay 0 and nothing fires.)
func (p *ioDelaysProbe) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	procs, err := env.Processes(ctx, false)
	if err != nil {
		return nil, err
	}
	cur := make(map[ioDelayKey]uint64, len(procs))
	var out []probe.Result
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range procs {
		if pr.State == "" {
			// Its stat was unreadable: nothing to compare.
			continue
		}
		k := ioDelayKey{pr.PID, pr.Starttime}
		cur[k] = pr.BlkioTicks
		prev, ok := p.last[k]
		if !ok || pr.BlkioTicks < prev || pr.BlkioTicks-prev < p.threshold {
			continue
		}
		delta := pr.BlkioTicks - prev
		out = append(out, ioDelays.Result(
			// NMA's message shows the command in its stat parentheses
			// ("Process (kworker/u8:2) …"); filters match on that.
			fmt.Sprintf("Process (%s) (PID %d) incurred %0.1f seconds of I/O delay", pr.Comm, pr.PID, float64(delta)/clockTicksPerSecond),
			strconv.Itoa(pr.PID)+"/"+pr.Comm))
	}
	// Only processes alive now are kept, so the map never outgrows the
	// process table.
	p.last = cur
	return out, nil
}
