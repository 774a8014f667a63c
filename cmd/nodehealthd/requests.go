package main

import (
	"github.com/nodehealthd/nodehealthd/internal/capture"
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/nodediag"
)

// Captures requested from the cluster with a NodeDiagnostic
// (docs/diagnostics.md): served while publishing to the cluster, with its
// connection, and collected by the diagnostics bundles' collector, so that
// a requested capture and an automatic one never run at once.
func (e *env) setupRequests(opts capture.Options) error {
	if !e.clusterOn {
		return nil
	}
	srv := nodediag.New(nodediag.Options{
		Collector: opts.Collector, CollectorErr: opts.CollectorErr, StateDir: e.o.stateDir, Log: e.log,
	}, e.cfg.Diagnostics)
	if err := e.metrics.Register(nodediag.Collectors()...); err != nil {
		return err
	}
	// The daemon builds detectors again whenever the config changes: the
	// moment to hand the server the new diagnostics section.
	e.detectors = append(e.detectors, func(sc daemon.SourceContext) []detector.Detector {
		srv.Configure(sc.Config.Diagnostics)
		return nil
	})
	srv.Start(e.ctx)
	e.requests = srv
	return nil
}
