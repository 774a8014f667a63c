package kernel

// Helpers shared by the kernel, container-runtime and storage probes.

import (
	"fmt"
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
