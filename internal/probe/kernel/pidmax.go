package kernel

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

var pidMax = probe.Kind{Name: "pid-max", Period: 5 * time.Minute}

var approachingKernelPidMax = pidMax.Reason(reason.Reason{
	Name: "ApproachingKernelPidMax", Condition: finding.KernelReady, Severity: finding.Warning,
	Description: "The tasks on the node (every thread holds a PID) use at least 70% (probes.pid-max.threshold) of the lower of " +
		"kernel.pid_max and kernel.threads-max. At the limit, fork and thread creation fail (ForkFailedOutOfPIDs) and pods cannot start or be probed.",
	Action: "Find the processes or pods with the most threads (ps -eLf, pids.current of each pod cgroup) and fix the leak; " +
		"limit pods with the kubelet's podPidsLimit. If the load is legitimate, raise kernel.pid_max and kernel.threads-max.",
})

func init() { registerFraction(pidMax, 0.70, checkPidMax) }

// checkPidMax compares the PIDs in use with the lower of kernel.pid_max and
// kernel.threads-max. NMA counts processes against the higher limit, but
// every thread holds a PID and fork fails at whichever limit is reached
// first, so a node running a few processes with thousands of threads each
// would exhaust PIDs without NMA ever warning.
func checkPidMax(ctx context.Context, env *probe.Env, threshold float64) ([]probe.Result, error) {
	fs, err := probe.HostProcFS(env)
	if err != nil {
		return nil, err
	}
	pidMax, err := fs.SysctlInts("kernel.pid_max")
	if err != nil {
		return nil, err
	}
	threadsMax, err := fs.SysctlInts("kernel.threads-max")
	if err != nil {
		return nil, err
	}
	if len(pidMax) != 1 || len(threadsMax) != 1 {
		return nil, fmt.Errorf("kernel.pid_max %v, kernel.threads-max %v: want one number each", pidMax, threadsMax)
	}
	limit := min(pidMax[0], threadsMax[0])
	if limit <= 0 {
		return nil, fmt.Errorf("PID limit %d: not positive", limit)
	}
	inUse, err := tasksInUse(env)
	if err != nil {
		// /proc/loadavg is missing or odd (a container's fake procfs):
		// processes are a lower bound of PIDs in use.
		procs, perr := fs.AllProcs()
		if perr != nil {
			return nil, perr
		}
		inUse = len(procs)
	}
	ratio := float64(inUse) / float64(limit)
	if ratio < threshold {
		return nil, nil
	}
	return []probe.Result{approachingKernelPidMax.Result(
		fmt.Sprintf("Approaching max number of PIDs. %d of %d total, %0.1f%%", inUse, limit, ratio*100), "")}, nil
}

// tasksInUse returns the number of threads on the host from the fourth
// field of /proc/loadavg ("running/total"): one read instead of walking
// every /proc/<pid>/task directory.
func tasksInUse(env *probe.Env) (int, error) {
	b, err := os.ReadFile(host.Path(env.Root, "/proc/loadavg"))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return 0, fmt.Errorf("loadavg: %q: want 5 fields", b)
	}
	_, total, ok := strings.Cut(f[3], "/")
	if !ok {
		return 0, fmt.Errorf("loadavg: %q: no running/total field", b)
	}
	return strconv.Atoi(total)
}
