package main

import (
	"path/filepath"

	"github.com/nodehealthd/nodehealthd/internal/capture"
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/publish/consolesummary"
)

// Diagnostics (docs/diagnostics.md): bundles captured by `nodehealthctl
// collect` in a child process when a condition turns False, and the
// console summary. Both are publishers configured from config.yaml's
// diagnostics section, again on every reload; upload outcomes come back
// through a detector.
func (e *env) setupDiagnostics() error {
	cfg := e.cfg.Diagnostics
	opts := capture.Options{Log: e.log, Root: e.o.root}
	if path, err := capture.FindCollector(cfg.Collector); err != nil {
		e.log.Error("diagnostics bundles cannot be captured", "err", err)
		opts.CollectorErr = err
	} else {
		configDir := filepath.Dir(e.opts.ConfigPath)
		opts.Collector = capture.NewCollector(path, e.log, "--root", e.o.root, "--daemon-paths",
			"--state-dir", e.o.stateDir, "--config-dir", configDir)
	}
	capturer := capture.New(opts, cfg)
	console := consolesummary.New(consolesummary.Options{Path: e.o.consolePath, Log: e.log})
	console.Configure(cfg.ConsoleOn(), cfg.BundleDir())
	e.opts.Publishers = append(e.opts.Publishers, capturer, console)
	if err := e.metrics.Register(append(capture.Collectors(), consolesummary.Collectors()...)...); err != nil {
		return err
	}
	// The daemon builds detectors again whenever the config changes: the
	// moment to hand the new diagnostics section to both publishers.
	e.detectors = append(e.detectors, func(sc daemon.SourceContext) []detector.Detector {
		d := sc.Config.Diagnostics
		capturer.Configure(d)
		console.Configure(d.ConsoleOn(), d.BundleDir())
		return []detector.Detector{capturer.Detector()}
	})
	return e.setupRequests(opts)
}
