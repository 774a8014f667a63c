package main

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodehealthd/nodehealthd/internal/capture"
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/nodediag"
)

// Captures requested from the cluster with a NodeDiagnostic
// (docs/diagnostics.md): served while publishing to the cluster, with its
// connection, and collected by the diagnostics bundles' collector, so that
// a requested capture and an automatic one never run at once.
var (
	// clusterOn is set when the cluster publisher is configured.
	clusterOn bool
	// requests is the server, nil when cluster publishing is off.
	requests *nodediag.Server
)

func setupRequests(e *env, opts capture.Options) error {
	if !clusterOn {
		return nil
	}
	srv := nodediag.New(nodediag.Options{
		Collector: opts.Collector, CollectorErr: opts.CollectorErr, StateDir: e.stateDir, Log: e.log,
	}, e.cfg.Diagnostics)
	for _, c := range nodediag.Collectors() {
		if err := daemonMetrics.Registry().Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return err
		}
	}
	// The daemon builds detectors again whenever the config changes: the
	// moment to hand the server the new diagnostics section.
	prev := e.opts.NewDetectors
	e.opts.NewDetectors = func(sc daemon.SourceContext) []detector.Detector {
		var dets []detector.Detector
		if prev != nil {
			dets = prev(sc)
		}
		srv.Configure(sc.Config.Diagnostics)
		return dets
	}
	srv.Start(e.ctx)
	requests = srv
	return nil
}
