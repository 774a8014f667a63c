package kernel

// Helpers shared by the KernelReady probes that compare a count with a
// kernel limit.

import (
	"context"
	"fmt"

	"github.com/nodehealthd/nodehealthd/internal/probe"
)

// fractionSettings is the settings of a probe that fires when a share of a
// kernel limit is used (probes.<name>.threshold).
type fractionSettings struct {
	// Threshold is the fraction of the limit in use that fires.
	Threshold float64 `yaml:"threshold"`
}

func (s fractionSettings) Validate() error {
	if s.Threshold <= 0 || s.Threshold > 1 {
		return fmt.Errorf("threshold %v: want a fraction in (0, 1]", s.Threshold)
	}
	return nil
}

// fractionCheck is the Check of a probe with fractionSettings, given the
// operator's threshold.
type fractionCheck func(ctx context.Context, env *probe.Env, threshold float64) ([]probe.Result, error)

// fractionProbe is a probe with fractionSettings whose one read under
// Env.Root concludes: the kernel's own counters, with no baseline to take.
type fractionProbe struct {
	probe.Base
	fractionSettings
	check fractionCheck
}

func (p *fractionProbe) Needs() probe.Needs { return probe.Needs{} }

func (p *fractionProbe) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	return p.check(ctx, env, p.Threshold)
}

// registerFraction registers a fractionProbe of kind k whose threshold
// defaults to threshold.
func registerFraction(k probe.Kind, threshold float64, check fractionCheck) {
	probe.Register(k, fractionSettings{Threshold: threshold}, func(_ *probe.Env, b probe.Base, s fractionSettings) (probe.Probe, error) {
		return &fractionProbe{b, s, check}, nil
	})
}
