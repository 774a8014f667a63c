package kernel

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

var zombiesKind = probe.Kind{Name: "zombies", Period: 5 * time.Minute}

// zombiesSettings is probes.zombies.
type zombiesSettings struct {
	// Threshold is the number of zombie processes that counts as many.
	Threshold int `yaml:"threshold"`
	// Consecutive is how many checks in a row must see at least Threshold
	// zombies before the reason fires: zombies come and go as parents reap
	// them, only a sustained pile-up means a parent that never will.
	Consecutive int `yaml:"consecutive"`
}

func (s zombiesSettings) Validate() error {
	return probe.Positive(map[string]int{"threshold": s.Threshold, "consecutive": s.Consecutive})
}

type zombiesProbe struct {
	probe.Base
	zombiesSettings
	liveHost string

	mu     sync.Mutex
	streak int
}

var excessiveZombieProcesses = zombiesKind.Reason(reason.Reason{
	Name: "ExcessiveZombieProcesses", Condition: finding.KernelReady, Severity: finding.Warning,
	Description: "At least 20 zombie processes (probes.zombies.threshold) were seen on 5 consecutive checks (probes.zombies.consecutive): " +
		"a parent does not reap its exited children. Zombies keep their PIDs, so a growing pile leads to PID exhaustion.",
	Action: "Find the zombies' parents (ps -eo pid,ppid,stat,comm, state Z) and fix or restart them. A container whose " +
		"entrypoint is not an init process is the usual cause: run it under an init (tini, docker-init) or with shareProcessNamespace.",
})

func init() {
	probe.Register(zombiesKind, zombiesSettings{Threshold: 20, Consecutive: 5}, func(env *probe.Env, b probe.Base, s zombiesSettings) (probe.Probe, error) {
		return &zombiesProbe{Base: b, zombiesSettings: s, liveHost: env.ProcessesLiveHost()}, nil
	})
}

func (p *zombiesProbe) Needs() probe.Needs {
	return probe.Needs{Checks: p.Consecutive, LiveHost: p.liveHost}
}

// Check counts processes in state Z. NMA gates on a lifetime counter that
// never decays, so five bad polls spread over weeks fire it; here the count
// must stay high on consecutive checks, and one check below the threshold
// starts over.
func (p *zombiesProbe) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	procs, err := env.Processes(ctx, false)
	if err != nil {
		return nil, err
	}
	zombies := 0
	for _, pr := range procs {
		if pr.State == "Z" {
			zombies++
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if zombies < p.Threshold {
		p.streak = 0
		return nil, nil
	}
	p.streak++
	if p.streak < p.Consecutive {
		return nil, nil
	}
	return []probe.Result{excessiveZombieProcesses.Result(fmt.Sprintf("Detected %d zombie processes still running", zombies), "")}, nil
}
