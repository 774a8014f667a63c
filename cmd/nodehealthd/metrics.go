package main

import (
	"flag"
	"net"

	"github.com/nodehealthd/nodehealthd/internal/publish/metrics"
)

// daemonMetrics exists whether or not the endpoint is served, so that other
// subsystems can hand its hooks out without depending on the order in which
// subsystems are set up: probes use daemonMetrics.ObserveProbe as
// probe.Runner.Observe, the cluster publisher takes it as a
// cluster.Observer.
var daemonMetrics = metrics.New(metrics.Options{Version: version})

var (
	metricsAddress string
	metricsPprof   bool
	// metricsAddr is the address actually bound (tests listen on port 0).
	metricsAddr net.Addr
)

func init() {
	register(subsystem{
		name: "metrics",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&metricsAddress, "metrics-address", metrics.DefaultAddress,
				"address for /metrics, /healthz and /readyz (empty disables; keep it on loopback unless the port is firewalled)")
			fs.BoolVar(&metricsPprof, "pprof", false, "also serve Go profiles under /debug/pprof/ on the metrics address")
		},
		setup: setupMetrics,
	})
}

func setupMetrics(e *env) error {
	if metricsAddress == "" {
		return nil
	}
	e.opts.Publishers = append(e.opts.Publishers, daemonMetrics)
	ln, err := net.Listen("tcp", metricsAddress)
	if err != nil {
		// Detection matters more than its metrics: run without them.
		e.log.Error("cannot serve metrics; running without /metrics, /healthz and /readyz", "addr", metricsAddress, "err", err)
		return nil
	}
	metricsAddr = ln.Addr()
	e.log.Info("serving metrics", "addr", ln.Addr().String(), "pprof", metricsPprof)
	go metrics.Serve(e.ctx, ln, daemonMetrics.Handler(metricsPprof, e.log), e.log)
	return nil
}
