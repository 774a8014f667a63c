package kernel

import (
	"context"
	"fmt"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

var openFiles = probe.Kind{Name: "open-files", Period: 5 * time.Minute}

var approachingMaxOpenFiles = openFiles.Reason(reason.Reason{
	Name: "ApproachingMaxOpenFiles", Condition: finding.KernelReady, Severity: finding.Warning,
	Description: "Allocated file handles (/proc/sys/fs/file-nr) reached 70% (probes.open-files.threshold) of fs.file-max. " +
		"At the limit, opening files and sockets fails with ENFILE for every process on the node.",
	Action: "Find the processes holding the most descriptors (ls /proc/<pid>/fd | wc -l, or lsof) and fix the leak; " +
		"raise fs.file-max if the load is expected.",
})

func init() { registerFraction(openFiles, 0.70, checkOpenFiles) }

// checkOpenFiles reads /proc/sys/fs/file-nr: allocated, allocated-but-unused, max.
func checkOpenFiles(ctx context.Context, env *probe.Env, threshold float64) ([]probe.Result, error) {
	fs, err := probe.HostProcFS(env)
	if err != nil {
		return nil, err
	}
	nr, err := fs.SysctlInts("fs.file-nr")
	if err != nil {
		return nil, err
	}
	if len(nr) != 3 || nr[2] <= 0 {
		return nil, fmt.Errorf("fs.file-nr: %v: want allocated, unused, max", nr)
	}
	allocated, limit := float64(nr[0]), float64(nr[2])
	ratio := allocated / limit
	if ratio < threshold {
		return nil, nil
	}
	return []probe.Result{approachingMaxOpenFiles.Result(
		fmt.Sprintf("Approaching Exhaustion of max open file descriptors. %0.0f of %0.0f total, %0.1f%%", allocated, limit, ratio*100), "")}, nil
}
