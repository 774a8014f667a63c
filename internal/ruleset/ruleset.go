// Package ruleset loads what the daemon runs: config.yaml and the operator
// rules compiled over the built-in catalogue. The daemon and nodehealthctl
// (rules validate, list, test) share it, so that what the command accepts
// is what the daemon runs, without the command linking the daemon.
package ruleset

import (
	"fmt"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/problems"
	"github.com/nodehealthd/nodehealthd/internal/rules"

	// The detectors declare their reasons in package variables
	// (internal/reason). Importing them here, not only where they are run,
	// lets every caller of Load accept config.yaml overrides of probe, NVML,
	// diagnostics and state-file reasons, even a binary or test that never
	// starts a detector.
	_ "github.com/nodehealthd/nodehealthd/internal/capture"
	_ "github.com/nodehealthd/nodehealthd/internal/nvidia"
	_ "github.com/nodehealthd/nodehealthd/internal/probe/all"
	_ "github.com/nodehealthd/nodehealthd/internal/state"
)

// Load reads the config and the operator rules and compiles them over the
// built-in catalogue. Each step goes on with what the one before could
// read, so that the error lists every problem of every file, ordered by
// file and line.
func Load(configPath, rulesDir string) (*config.Config, *rules.Set, error) {
	cfg, cerr := config.Load(configPath)
	rulesDir = cfg.RulesDirFor(rulesDir)
	builtin, err := rules.Catalogue()
	if err != nil {
		return nil, nil, fmt.Errorf("built-in catalogue: %w", err)
	}
	operator, lerr := rules.LoadDir(rulesDir)
	set, serr := rules.Compile(rules.Merge(builtin, operator), cfg.RuleOptions())
	if err := problems.Join(cerr, lerr, serr); err != nil {
		return nil, nil, err
	}
	return cfg, set, nil
}
