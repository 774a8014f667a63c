// Package diagmetrics makes the counters of the diagnostics subsystem,
// nodehealthd_diagnostics_*, which three packages keep (internal/capture,
// internal/nodediag, internal/publish/consolesummary) and hand to the
// daemon's registry through their Collectors.
package diagmetrics

import "github.com/prometheus/client_golang/prometheus"

func opts(name, help string) prometheus.CounterOpts {
	return prometheus.CounterOpts{Namespace: "nodehealthd", Subsystem: "diagnostics", Name: name, Help: help}
}

// Counter returns the counter nodehealthd_diagnostics_<name>.
func Counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(opts(name, help))
}

// CounterVec returns the counter nodehealthd_diagnostics_<name>, by labels.
func CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(opts(name, help), labels)
}
