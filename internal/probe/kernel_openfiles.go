package probe

import (
	"context"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// openFilesConfig is probes.open-files.
type openFilesConfig struct {
	probeSettings `yaml:",inline"`
	// Threshold is the fraction of fs.file-max allocated that fires.
	Threshold float64 `yaml:"threshold"`
}

type openFilesProbe struct {
	probeInfo
	threshold float64
}

var approachingMaxOpenFiles = declare("open-files", 5*time.Minute, reason.Reason{
	Name: "ApproachingMaxOpenFiles", Condition: finding.KernelReady, Severity: finding.Warning,
	Description: "Allocated file handles (/proc/sys/fs/file-nr) reached 70% (probes.open-files.threshold) of fs.file-max. " +
		"At the limit, opening files and sockets fails with ENFILE for every process on the node.",
	Action: "Find the processes holding the most descriptors (ls /proc/<pid>/fd | wc -l, or lsof) and fix the leak; " +
		"raise fs.file-max if the load is expected.",
})

func init() {
	Register("open-files", func(env *Env, section *yaml.Node) (Probe, error) {
		cfg := openFilesConfig{probeSettings: probeSettings{Period: 5 * time.Minute}, Threshold: 0.70}
		on, err := decodeSettings(section, &cfg, &cfg.probeSettings)
		if err != nil || !on {
			return nil, err
		}
		if cfg.Threshold <= 0 || cfg.Threshold > 1 {
			return nil, fmt.Errorf("threshold %v: want a fraction in (0, 1]", cfg.Threshold)
		}
		return &openFilesProbe{probeInfo: probeInfo{"open-files", cfg.Period, Needs{}}, threshold: cfg.Threshold}, nil
	})
}

// Check reads /proc/sys/fs/file-nr: allocated, allocated-but-unused, max.
func (p *openFilesProbe) Check(ctx context.Context, env *Env) ([]Result, error) {
	fs, err := hostProcFS(env)
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
	if ratio < p.threshold {
		return nil, nil
	}
	return []Result{approachingMaxOpenFiles.Result(
		fmt.Sprintf("Approaching Exhaustion of max open file descriptors. %0.0f of %0.0f total, %0.1f%%", allocated, limit, ratio*100), "")}, nil
}
