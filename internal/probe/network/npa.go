package network

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

var npaKind = probe.Kind{Name: "network-policy-agent", Period: 5 * time.Minute}

type netNPASettings struct {
	// Unit is the network policy agent's systemd service.
	Unit string `yaml:"unit"`
	// NotRunningFor is how long the agent must stay not active before
	// NPANotRunning is reported (restarts and upgrades are brief).
	NotRunningFor time.Duration `yaml:"notRunningFor"`
	// RestartThreshold is the number of restarts between two checks that
	// reports NPARepeatedlyRestart.
	RestartThreshold uint32 `yaml:"restartThreshold"`
}

func (s netNPASettings) Validate() error {
	var errs []error
	if s.Unit == "" {
		errs = append(errs, fmt.Errorf("unit: want a systemd unit name"))
	}
	return errors.Join(append(errs, probe.Positive(map[string]uint32{"restartThreshold": s.RestartThreshold}),
		probe.Positive(map[string]time.Duration{"notRunningFor": s.NotRunningFor}))...)
}

type netNPA struct {
	probe.Base
	tolerance time.Duration
	unit      string
	threshold uint32
	units     netUnits

	downSince    time.Time // zero while active
	lastRestarts uint32
	haveBaseline bool
}

var (
	npaNotRunning = npaKind.Reason(reason.Reason{
		Name: "NPANotRunning", Condition: finding.NetworkingReady, Severity: finding.Fatal,
		Description: "On EKS Auto Mode, the network policy agent (aws-network-policy-agent.service) has not been active for " +
			"15 minutes (probes.network-policy-agent.notRunningFor): network policies are no longer enforced or updated.",
		Action: "Check systemctl status aws-network-policy-agent and its journal. Auto Mode nodes are managed: replace the " +
			"node if the agent does not come back.",
	})
	npaRepeatedlyRestart = npaKind.Reason(reason.Reason{
		Name: "NPARepeatedlyRestart", Condition: finding.NetworkingReady, Severity: finding.Warning,
		Description: "On EKS Auto Mode, the network policy agent restarted at least 5 times " +
			"(probes.network-policy-agent.restartThreshold) between two checks.",
		Action: "Read journalctl -u aws-network-policy-agent for why it exits; replace the node if it keeps restarting.",
	})
)

func init() {
	defaults := netNPASettings{Unit: "aws-network-policy-agent.service", NotRunningFor: 15 * time.Minute, RestartThreshold: 5}
	probe.Register(npaKind, defaults, func(env *probe.Env, b probe.Base, s netNPASettings) (probe.Probe, error) {
		// Only EKS Auto Mode runs the agent as a systemd service; elsewhere
		// it is a container in the aws-node pod.
		if !env.Tags["eks-auto"] {
			return nil, nil
		}
		return &netNPA{Base: b, tolerance: s.NotRunningFor, unit: s.Unit, threshold: s.RestartThreshold,
			units: newNetDBusUnits(env.Root)}, nil
	})
}

// Needs: the restart count's first reading is only a baseline, and the
// agent must stay inactive for p.tolerance.
func (p *netNPA) Needs() probe.Needs { return probe.Needs{Checks: 2, Lasting: p.tolerance} }

func (p *netNPA) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	st, err := p.units.UnitState(ctx, p.unit)
	if err != nil {
		// Unknown state: neither raise nor clear (NMA skips the cycle).
		return nil, err
	}
	now := env.Now()
	if st.ActiveState != "active" {
		if p.downSince.IsZero() {
			p.downSince = now
		}
		if now.Sub(p.downSince) < p.tolerance {
			return nil, nil
		}
		return []probe.Result{npaNotRunning.Result(fmt.Sprintf("NPA is not running on this Auto Mode node (SubState=%q, Result=%q)", st.SubState, st.Result), "")}, nil
	}
	p.downSince = time.Time{}
	// The first reading is the baseline: NMA started from 0 and so
	// reported restarts from before the daemon started (B10 quirk 9). A
	// counter that went down was reset by a manual restart; it becomes the
	// new baseline instead of wrapping to a huge delta.
	prev, had := p.lastRestarts, p.haveBaseline
	p.lastRestarts, p.haveBaseline = st.NRestarts, true
	if !had || st.NRestarts < prev {
		return nil, nil
	}
	if d := st.NRestarts - prev; d >= p.threshold {
		return []probe.Result{npaRepeatedlyRestart.Result(fmt.Sprintf("NPA restarted %d times in last poll interval (threshold: %d, SubState=%q, Result=%q)", d, p.threshold, st.SubState, st.Result), "")}, nil
	}
	return nil, nil
}
