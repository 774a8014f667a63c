package capture

import "github.com/prometheus/client_golang/prometheus"

// Results of a capture, the label of capturesTotal.
const (
	resultWritten  = "written"
	resultFailed   = "failed"
	resultTimedOut = "timed_out"
)

// Why a trigger did not become a capture, the label of skippedTotal.
const (
	skipRateLimited = "rate_limited"
	skipQueueFull   = "queue_full"
)

var (
	capturesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "nodehealthd", Subsystem: "diagnostics", Name: "captures_total",
		Help: "Automatic diagnostics captures, by result (written, failed, timed_out).",
	}, []string{"result"})
	skippedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "nodehealthd", Subsystem: "diagnostics", Name: "triggers_skipped_total",
		Help: "Capture triggers that did not capture, by why (rate_limited: the reason was captured within the hour; queue_full).",
	}, []string{"why"})
	uploadsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "nodehealthd", Subsystem: "diagnostics", Name: "uploads_total",
		Help: "Uploads of captured bundles, by result (success, failure).",
	}, []string{"result"})
	removedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "nodehealthd", Subsystem: "diagnostics", Name: "bundles_removed_total",
		Help: "Bundles removed to keep the diagnostics directory within its retention.",
	})
	priorityFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "nodehealthd", Subsystem: "diagnostics", Name: "priority_failures_total",
		Help: "Collections whose CPU or I/O priority could not be lowered (they ran at the daemon's).",
	})
	errorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "nodehealthd", Subsystem: "diagnostics", Name: "errors_total",
		Help: "Failures around captures that are not a capture's result, by what failed (dir, index, retention, report).",
	}, []string{"what"})
)

// Collectors are the package's series, for the daemon's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{capturesTotal, skippedTotal, uploadsTotal, removedTotal, priorityFailures, errorsTotal}
}
