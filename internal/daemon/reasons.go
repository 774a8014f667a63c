package daemon

import (
	// The detectors declare their reasons in package variables (internal/
	// reason). Importing them here, not only where they are run, lets every
	// caller of LoadRuleSet (the daemon, nodehealthctl rules validate/list/
	// test) accept config.yaml overrides of probe and NVML reasons, even a
	// binary or test that never starts a detector.
	_ "github.com/nodehealthd/nodehealthd/internal/capture"
	_ "github.com/nodehealthd/nodehealthd/internal/nvidia"
	_ "github.com/nodehealthd/nodehealthd/internal/probe"
)
