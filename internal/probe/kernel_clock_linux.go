package probe

import (
	"context"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// clockSyncConfig is probes.clock-sync.
type clockSyncConfig struct {
	probeSettings `yaml:",inline"`
}

type clockSyncProbe struct {
	probeInfo
	// adjtimex is unix.Adjtimex; tests replace it, since the kernel clock
	// is the one thing no fixture tree can stand in for.
	adjtimex func(*unix.Timex) (int, error)
}

func init() {
	describe("clock-sync", 5*time.Minute, detector.ReasonInfo{
		Reason: "ClockUnsynchronized", Condition: finding.KernelReady, Severity: finding.Warning,
		Description: "The kernel reports its clock as not synchronized to any time source (adjtimex STA_UNSYNC): chronyd or ntpd " +
			"is not running or cannot reach a server. Clock drift breaks TLS and token validity checks and log ordering.",
		Action: "Check the time daemon (chronyc tracking, systemctl status chronyd) and that the node reaches its time source " +
			"(169.254.169.123, the Amazon Time Sync Service, on EC2).",
	})
	Register("clock-sync", func(env *Env, section *yaml.Node) (Probe, error) {
		cfg := clockSyncConfig{probeSettings: probeSettings{Period: 5 * time.Minute}}
		on, err := decodeSettings(section, &cfg, &cfg.probeSettings)
		if err != nil || !on {
			return nil, err
		}
		return &clockSyncProbe{probeInfo: probeInfo{"clock-sync", []string{"ClockUnsynchronized"}, cfg.Period}, adjtimex: unix.Adjtimex}, nil
	})
}

// Check asks the kernel whether its clock is disciplined by a time source
// (chrony or ntpd clear STA_UNSYNC once they steer it). The call only reads:
// a zero Modes field changes nothing. The kernel clock is not under
// env.Root, so a fixture tree still sees the real clock.
func (p *clockSyncProbe) Check(ctx context.Context, env *Env) ([]Result, error) {
	var tx unix.Timex
	if _, err := p.adjtimex(&tx); err != nil {
		// Unknown is not unsynchronized: report a failed check so that
		// nothing is raised or cleared.
		return nil, fmt.Errorf("adjtimex: %w", err)
	}
	if tx.Status&unix.STA_UNSYNC == 0 {
		return nil, nil
	}
	return []Result{{
		Condition: finding.KernelReady, Reason: "ClockUnsynchronized", Severity: finding.Warning,
		Message: "The kernel clock is not synchronized to any time source (STA_UNSYNC); time drift may break time-sensitive workloads",
	}}, nil
}
