// Package detector is the contract for detectors that are not log rules:
// host probes, NVML, anything that checks periodically or listens to an
// API. They report findings and clears through an Emitter; the daemon
// commits them with everything else, so probes plug in without any change
// to the finding model, the state file or the publishers. Each detector also
// describes the reasons it reports (Describe), so that config validation and
// docs/reasons.md know them without running it.
package detector

import (
	"context"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// Emitter receives a detector's results. It is safe for concurrent use and
// never blocks for long.
type Emitter interface {
	// Raise reports a finding. Detected and LastSeen must be set; ID and
	// BootID are filled in by the pipeline. Probe findings set
	// Recovery.Probe and Clear them when the check passes again.
	Raise(finding.Finding)
	// Clear ends active findings (e.g. a probe passing again).
	Clear(finding.Clear)
}

// Detector runs until ctx ends. An error return is logged and the detector
// is restarted with backoff; a detector must bound its own calls in time.
type Detector interface {
	Name() string
	Run(ctx context.Context, emit Emitter) error
}
