package main

import (
	"net"

	"github.com/nodehealthd/nodehealthd/internal/publish/metrics"
)

// setupMetrics serves /metrics, /healthz and /readyz on --metrics-address.
func (e *env) setupMetrics() {
	if e.o.metricsAddress == "" {
		return
	}
	e.opts.Publishers = append(e.opts.Publishers, e.metrics)
	ln, err := net.Listen("tcp", e.o.metricsAddress)
	if err != nil {
		// Detection matters more than its metrics: run without them.
		e.log.Error("cannot serve metrics; running without /metrics, /healthz and /readyz", "addr", e.o.metricsAddress, "err", err)
		return
	}
	if e.o.pprof && !metrics.Profiler {
		e.log.Error("--pprof: this binary was built without the profiler; build it with make build TAGS=pprof")
	}
	e.metricsAddr = ln.Addr()
	e.log.Info("serving metrics", "addr", ln.Addr().String(), "pprof", e.o.pprof && metrics.Profiler)
	go metrics.Serve(e.ctx, ln, e.metrics.Handler(e.o.pprof, e.log), e.log)
}
