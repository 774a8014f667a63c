package nodediag

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodehealthd/nodehealthd/internal/diagmetrics"
)

// Results of a request, the label of requestsTotal.
const (
	resultSuccess    = "success"
	resultWithErrors = "success_with_errors"
	resultFailure    = "failure"
	resultRefused    = "refused"
)

var (
	requestsTotal = diagmetrics.CounterVec("requests_total",
		"Captures requested by a NodeDiagnostic, by result (success, success_with_errors, failure; refused: a packet capture).",
		"result")
	watchFailures = diagmetrics.CounterVec("request_watch_failures_total",
		"Failed lists and watches of the node's NodeDiagnostic, by why (missing: no CRD; refused: 401/403; other).",
		"why")
	errorsTotal = diagmetrics.CounterVec("request_errors_total",
		"Failures around requested captures that are not a capture's result, by what failed (status, record, remove, dir, client).",
		"what")
)

// Collectors are the package's series, for the daemon's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{requestsTotal, watchFailures, errorsTotal}
}
