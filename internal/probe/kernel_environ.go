package probe

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// largeEnvironmentConfig is probes.large-environment.
type largeEnvironmentConfig struct {
	probeSettings `yaml:",inline"`
	// Threshold: a process with more environment variables than this fires.
	Threshold int `yaml:"threshold"`
}

type largeEnvironmentProbe struct {
	probeInfo
	threshold int
}

var largeEnvironment = declare("large-environment", 5*time.Minute, reason.Reason{
	Name: "LargeEnvironment", Condition: finding.KernelReady, Severity: finding.Warning,
	Description: "A process has more than 1000 environment variables (probes.large-environment.threshold), typically Kubernetes " +
		"service links in a namespace with many services. A large environment slows every exec and can exceed the kernel's " +
		"argument size limit (E2BIG). The key names the PID and command.",
	Action: "Set enableServiceLinks: false in the pod spec, or reduce the variables the workload sets.",
})

func init() {
	Register("large-environment", func(env *Env, section *yaml.Node) (Probe, error) {
		cfg := largeEnvironmentConfig{probeSettings: probeSettings{Period: 5 * time.Minute}, Threshold: 1000}
		on, err := decodeSettings(section, &cfg, &cfg.probeSettings)
		if err != nil || !on {
			return nil, err
		}
		if cfg.Threshold < 1 {
			return nil, fmt.Errorf("threshold %d: want ≥ 1", cfg.Threshold)
		}
		return &largeEnvironmentProbe{probeInfo: probeInfo{"large-environment", cfg.Period, Needs{LiveHost: env.processesLiveHost()}}, threshold: cfg.Threshold}, nil
	})
}

// Check counts the non-empty entries of every /proc/<pid>/environ. A huge
// environment (typically Kubernetes service links in a namespace with
// thousands of services) slows every exec and can hit ARG_MAX.
func (p *largeEnvironmentProbe) Check(ctx context.Context, env *Env) ([]Result, error) {
	procs, err := env.processes(ctx, true)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, pr := range procs {
		// Environ is -1 for a process that exited since the listing or
		// could not be read: skip it.
		if pr.Environ <= p.threshold {
			continue
		}
		out = append(out, largeEnvironment.Result(
			fmt.Sprintf("PID %d has a higher than normal environment variable count at %d", pr.PID, pr.Environ),
			// The command name keeps the key readable and makes a reused
			// PID a different finding.
			strconv.Itoa(pr.PID)+"/"+pr.Comm))
	}
	return out, nil
}
