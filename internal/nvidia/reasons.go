package nvidia

import "github.com/nodehealthd/nodehealthd/internal/finding"

// Reasons reported through NVML. The names are EKS's Node Monitoring
// Agent's (which reads DCGM), so repair rules keyed on them keep working;
// NvidiaNVMLUnavailable is ours (docs/accelerators.md says why).
const (
	ReasonDoubleBitError      = "NvidiaDoubleBitError"
	ReasonPageRetirement      = "NvidiaPageRetirement"
	ReasonNVLinkError         = "NvidiaNVLinkError"
	ReasonPCIeError           = "NvidiaPCIeError"
	ReasonThermalError        = "NvidiaThermalError"
	ReasonPowerError          = "NvidiaPowerError"
	ReasonDeviceCountMismatch = "NvidiaDeviceCountMismatch"
	ReasonFabricManager       = "FabricManagerNotRunning"
	ReasonFabricError         = "NvidiaFabricError"
	ReasonNVMLUnavailable     = "NvidiaNVMLUnavailable"
	// XID reasons are templates, exactly as the kmsg rules build them.
	ReasonXIDErrorTemplate   = "NvidiaXID${xid}Error"
	ReasonXIDWarningTemplate = "NvidiaXID${xid}Warning"
)

// Reasons lists every reason this package may report (for docs and
// listings).
func Reasons() []string {
	return []string{
		ReasonXIDErrorTemplate, ReasonXIDWarningTemplate,
		ReasonDoubleBitError, ReasonPageRetirement, ReasonNVLinkError, ReasonPCIeError,
		ReasonThermalError, ReasonPowerError, ReasonDeviceCountMismatch,
		ReasonFabricManager, ReasonFabricError, ReasonNVMLUnavailable,
	}
}

// Source is the finding source of everything read through NVML. It must
// differ from the kmsg source for the pipeline to merge the two sightings
// of one XID.
const Source = "nvml"

// result is one problem a poll found; the tracker turns results into
// raises and clears.
type result struct {
	Reason   string
	Severity finding.Severity
	Key      string
	Message  string
	// Sig, for a Warning, is what makes a repeat worth another event
	// (e.g. the number of retired pages); "" means one event per episode.
	Sig string
	// Confirm is how many consecutive polls must see the problem before it
	// is raised (0 or 1: the first); it keeps start-up races (device files
	// created a moment after the driver loads) from flapping a condition.
	Confirm int
}
