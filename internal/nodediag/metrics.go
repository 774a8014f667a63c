package nodediag

import "github.com/prometheus/client_golang/prometheus"

// Results of a request, the label of requestsTotal.
const (
	resultSuccess    = "success"
	resultWithErrors = "success_with_errors"
	resultFailure    = "failure"
	resultRefused    = "refused"
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "nodehealthd", Subsystem: "diagnostics", Name: "requests_total",
		Help: "Captures requested by a NodeDiagnostic, by result (success, success_with_errors, failure; refused: a packet capture).",
	}, []string{"result"})
	watchFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "nodehealthd", Subsystem: "diagnostics", Name: "request_watch_failures_total",
		Help: "Failed lists and watches of the node's NodeDiagnostic, by why (missing: no CRD; refused: 401/403; other).",
	}, []string{"why"})
	errorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "nodehealthd", Subsystem: "diagnostics", Name: "request_errors_total",
		Help: "Failures around requested captures that are not a capture's result, by what failed (status, record, remove, dir, client).",
	}, []string{"what"})
)

// Collectors are the package's series, for the daemon's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{requestsTotal, watchFailures, errorsTotal}
}
