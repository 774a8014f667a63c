package probe

import (
	"fmt"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// declare declares a reason of probe name, whose default period is period:
// the one place the reason's condition, severity and texts are written.
// Probe files call it in package variable declarations and build their
// results from what it returns.
func declare(name string, period time.Duration, r reason.Reason) *reason.Reason {
	r.Detector = "probe:" + name
	r.Period = period
	if r.Recovery == "" {
		r.Recovery = defaultRecovery(r.Severity)
	}
	return reason.Declare(r)
}

// defaultRecovery is what the framework does with a probe's finding, so
// that each probe states only what differs.
func defaultRecovery(sev finding.Severity) string {
	if sev == finding.Warning {
		return "Nothing to recover: a Warning is an event and never sets the condition. Each check that still finds the problem reports it again."
	}
	return fmt.Sprintf("Clears once the check has passed %d times in a row. A reboot also clears it; the probe raises it again if the problem remains.", DefaultPasses)
}
