package kernel

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

var largeEnvironmentKind = probe.Kind{Name: "large-environment", Period: 5 * time.Minute}

// largeEnvironmentSettings is probes.large-environment.
type largeEnvironmentSettings struct {
	// Threshold: a process with more environment variables than this fires.
	Threshold int `yaml:"threshold"`
}

func (s largeEnvironmentSettings) Validate() error {
	return probe.Positive(map[string]int{"threshold": s.Threshold})
}

type largeEnvironmentProbe struct {
	probe.Base
	largeEnvironmentSettings
	needs probe.Needs
}

var largeEnvironment = largeEnvironmentKind.Reason(reason.Reason{
	Name: "LargeEnvironment", Condition: finding.KernelReady, Severity: finding.Warning,
	Description: "A process has more than 1000 environment variables (probes.large-environment.threshold), typically Kubernetes " +
		"service links in a namespace with many services. A large environment slows every exec and can exceed the kernel's " +
		"argument size limit (E2BIG). The key names the PID and command.",
	Action: "Set enableServiceLinks: false in the pod spec, or reduce the variables the workload sets.",
})

func init() {
	probe.Register(largeEnvironmentKind, largeEnvironmentSettings{Threshold: 1000}, func(env *probe.Env, b probe.Base, s largeEnvironmentSettings) (probe.Probe, error) {
		return &largeEnvironmentProbe{b, s, probe.Needs{LiveHost: env.ProcessesLiveHost()}}, nil
	})
}

func (p *largeEnvironmentProbe) Needs() probe.Needs { return p.needs }

// Check counts the non-empty entries of every /proc/<pid>/environ. A huge
// environment (typically Kubernetes service links in a namespace with
// thousands of services) slows every exec and can hit ARG_MAX.
func (p *largeEnvironmentProbe) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	procs, err := env.Processes(ctx, true)
	if err != nil {
		return nil, err
	}
	var out []probe.Result
	for _, pr := range procs {
		// Environ is -1 for a process that exited since the listing or
		// could not be read: skip it.
		if pr.Environ <= p.Threshold {
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
