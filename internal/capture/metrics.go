package capture

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodehealthd/nodehealthd/internal/diagmetrics"
)

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
	capturesTotal = diagmetrics.CounterVec("captures_total",
		"Automatic diagnostics captures, by result (written, failed, timed_out).",
		"result")
	skippedTotal = diagmetrics.CounterVec("triggers_skipped_total",
		"Capture triggers that did not capture, by why (rate_limited: the reason was captured within the hour; queue_full).",
		"why")
	uploadsTotal = diagmetrics.CounterVec("uploads_total",
		"Uploads of captured bundles, by result (success, failure).",
		"result")
	removedTotal = diagmetrics.Counter("bundles_removed_total",
		"Bundles removed to keep the diagnostics directory within its retention.")
	priorityFailures = diagmetrics.Counter("priority_failures_total",
		"Collections whose CPU or I/O priority could not be lowered (they ran at the daemon's).")
	errorsTotal = diagmetrics.CounterVec("errors_total",
		"Failures around captures that are not a capture's result, by what failed (dir, index, retention, report).",
		"what")
)

// Collectors are the package's series, for the daemon's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{capturesTotal, skippedTotal, uploadsTotal, removedTotal, priorityFailures, errorsTotal}
}
