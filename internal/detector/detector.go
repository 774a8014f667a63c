// Package detector is the contract for detectors that are not log rules:
// host probes, NVML, anything that checks periodically or listens to an
// API. They report observations and clears through an Emitter; the policy
// stage turns observations into findings and the daemon commits them with
// everything else, so probes plug in without any change to the finding
// model, the state file or the publishers. The reasons a detector reports
// are declared in internal/reason.
package detector

import (
	"context"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
)

// Emitter receives a detector's results. It is safe for concurrent use and
// never blocks for long.
type Emitter interface {
	// Raise reports an observation of a declared reason, as the
	// declaration builds it by default (reason.Result.Finding); the policy
	// stage applies config.yaml's overrides and fills in the ID and boot.
	// Probe findings set Recovery.Probe and Clear them when the check
	// passes again.
	Raise(finding.Finding)
	// Observe reports an event that compiled rules turn into a finding,
	// as they do a log line (NVML's XIDs).
	Observe(policy.Event)
	// Clear ends active findings (e.g. a probe passing again).
	Clear(finding.Clear)
}

// Detector runs until ctx ends. An error return is logged and the detector
// is restarted with backoff; a detector must bound its own calls in time.
type Detector interface {
	Name() string
	Run(ctx context.Context, emit Emitter) error
}
