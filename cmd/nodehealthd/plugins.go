package main

import (
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/plugin"
)

// setupPlugins: NPD custom plugins (config.yaml plugins:), run as one
// detector.
func (e *env) setupPlugins() {
	e.detectors = append(e.detectors, func(sc daemon.SourceContext) []detector.Detector {
		// The runner is built even without plugins: it clears what a
		// plugin removed from the config left active.
		r := &plugin.Runner{Log: sc.Logger.With("subsystem", "plugins"), Active: sc.Active,
			Observe: func(source string, rule plugin.Rule, res plugin.Result) {
				e.metrics.ObservePlugin(source, rule.Type, rule.Reason, string(res.Status))
			}}
		if sc.Config != nil {
			mons, err := plugin.LoadAll(sc.Config.PluginFiles(), sc.Config.IsDeclared)
			if err != nil {
				// The daemon validated them when it loaded the config; a
				// file changed since is logged and the others run.
				sc.Logger.Error("plugin monitors that cannot run", "err", err)
			}
			r.Monitors, r.User = mons, sc.Config.PluginUserName()
		}
		return []detector.Detector{r}
	})
}
