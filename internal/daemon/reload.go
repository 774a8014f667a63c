package daemon

import (
	"fmt"
	"reflect"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/rules"
	"github.com/nodehealthd/nodehealthd/internal/ruleset"
)

func (d *Daemon) rulesDir() string { return d.cfg.RulesDirFor(d.opts.RulesDir) }

// reload loads config and rules. On failure the previous good set stays; at
// startup (no previous set) the built-in catalogue with defaults is
// installed and the error still returned, so that the caller logs it.
func (d *Daemon) reload(initial bool) error {
	cfg, set, err := ruleset.Load(d.opts.ConfigPath, d.opts.RulesDir)
	if err != nil {
		if !initial {
			return err
		}
		cfg = &config.Config{}
		builtin, berr := rules.Catalogue()
		if berr != nil {
			return fmt.Errorf("built-in catalogue: %w", berr)
		}
		set, berr = rules.Compile(builtin, rules.Options{})
		if berr != nil {
			return fmt.Errorf("built-in catalogue: %w", berr)
		}
		d.install(cfg, set)
		return err
	}
	d.install(cfg, set)
	return nil
}

func (d *Daemon) install(cfg *config.Config, set *rules.Set) {
	windows, history := d.st.Windows, d.st.History
	if d.stage != nil {
		windows, _ = d.stage.Windows()
		history = d.stage.History()
	}
	d.cfg, d.set = cfg, set
	d.applyMemoryLimit()
	d.applyGCPercent()
	d.engine = rules.NewEngine(set)
	d.stage = set.Policy().Stage(d.bootID, windows)
	d.stage.SetHistory(history)
	d.inputs = set.Inputs()
	d.dirty = true
	for _, p := range d.opts.Publishers {
		if r, ok := p.(publish.Reconfigurable); ok {
			r.Reconfigure(cfg)
		}
	}
}

// reloadAndReport reloads after a signal or file change and reports whether
// sources must restart.
func (d *Daemon) reloadAndReport() bool {
	old := d.inputs
	oldCfg := d.cfg
	if err := d.reload(false); err != nil {
		d.log.Error("invalid rules or config; keeping the last good set", "err", err)
		return false
	}
	d.log.Info("rules reloaded", "rules", len(d.set.Rules()))
	d.commit(time.Now())
	// Detectors read the config (probe sections, sets, overrides) when they
	// are built, so any config change restarts them with the sources.
	return !reflect.DeepEqual(old, d.inputs) || !reflect.DeepEqual(oldCfg, d.cfg)
}
