package probe

import (
	"fmt"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// describe declares the reasons of probe name in the detector registry,
// where config validation and docs/reasons.md find them without building
// the probe (many probes only exist on some hosts). Probe files call it
// from init next to Register; period is the probe's default period, and a
// test checks both against what the factory builds.
func describe(name string, period time.Duration, infos ...detector.ReasonInfo) {
	for i := range infos {
		infos[i].Detector = "probe:" + name
		infos[i].Period = formatPeriod(period)
		if infos[i].Recovery == "" {
			infos[i].Recovery = defaultRecovery(infos[i].Severity)
		}
	}
	detector.Describe(infos...)
}

// defaultRecovery is what the framework does with a probe's finding, so
// that each probe states only what differs.
func defaultRecovery(sev finding.Severity) string {
	if sev == finding.Warning {
		return "Nothing to recover: a Warning is an event and never sets the condition. Each check that still finds the problem reports it again."
	}
	return fmt.Sprintf("Clears once the check has passed %d times in a row. A reboot also clears it; the probe raises it again if the problem remains.", DefaultPasses)
}

// formatPeriod writes a period the way operators write it in config.yaml
// ("5m", "1h", not "5m0s").
func formatPeriod(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
