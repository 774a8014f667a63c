package daemon

import (
	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/rules"

	// The detectors describe their reasons from init. Importing them here,
	// not only where they are run, lets every caller of LoadRuleSet (the
	// daemon, nodehealthctl rules validate/list/test) accept config.yaml
	// overrides of probe and NVML reasons, even a binary or test that never
	// starts a detector.
	_ "github.com/nodehealthd/nodehealthd/internal/capture"
	_ "github.com/nodehealthd/nodehealthd/internal/nvidia"
	_ "github.com/nodehealthd/nodehealthd/internal/probe"
)

// ruleOptions is the config's rule options plus the reasons detectors
// report, so that overrides naming them validate.
func ruleOptions(cfg *config.Config) rules.Options {
	opts := cfg.RuleOptions()
	opts.KnownReasons = detector.ReasonNames()
	return opts
}
