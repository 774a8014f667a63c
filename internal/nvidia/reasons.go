package nvidia

import (
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// Reasons reported through NVML. The names are EKS's Node Monitoring
// Agent's (which reads DCGM), so repair rules keyed on them keep working;
// NvidiaNVMLUnavailable and NvidiaInfoROMError are ours (docs/accelerators.md
// says why).
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
	ReasonInfoROM             = "NvidiaInfoROMError"
	ReasonNVMLUnavailable     = "NvidiaNVMLUnavailable"
	// XID reasons are templates, exactly as the kmsg rules build them.
	ReasonXIDErrorTemplate   = "NvidiaXID${xid}Error"
	ReasonXIDWarningTemplate = "NvidiaXID${xid}Warning"
)

// pollPeriod is the default nvml.interval of config.yaml, as documented for the polled
// reasons.
const pollPeriod = time.Minute

// declare declares a reason reported through NVML.
func declare(r reason.Reason) *reason.Reason {
	r.Condition, r.Detector = finding.AcceleratedHardwareReady, Source
	return reason.Declare(r)
}

// Recovery texts shared by several reasons.
const (
	recoveryPolledFatal = "Clears after 2 consecutive polls that could read the GPU and found no problem (typically after a " +
		"GPU reset or a reboot); findings left by an earlier run are cleared the same way."
	recoveryEpisode = "Nothing to recover: a Warning is an event and never sets the condition. It is sent once per episode " +
		"and again only after the GPU has been healthy for 2 polls."
)

var (
	_ = declare(reason.Reason{
		Name: ReasonXIDErrorTemplate, Severity: finding.Fatal,
		Description: "NVML delivered an XID event whose number is in the fatal set (sets.nvidiaFatalXIDs). The kernel log " +
			"rule of the same reason reads the NVRM record of the same XID; both sightings become one finding.",
		Action: "Cordon and drain the node and reboot it; replace the node if the XID recurs. NVIDIA's XID catalog explains " +
			"each number.",
		Recovery: "As for the kernel log rule of the same reason: clears on reboot, by its recovery settings " +
			"(reasons.<Reason>.recovery), or with nodehealthctl clear.",
	})
	_ = declare(reason.Reason{
		Name: ReasonXIDWarningTemplate, Severity: finding.Warning,
		Description: "NVML delivered an XID event outside the fatal set, usually an application fault; the kernel log rule " +
			"of the same reason reports the same XID and the two are merged into one event.",
		Action: "Check the workload that used the GPU. The same XID across different workloads on one GPU points to " +
			"hardware: reset the GPU or replace the node.",
		Recovery: "Nothing to recover: a Warning is an event and never sets the condition.",
	})
	doubleBitError = declare(reason.Reason{
		Name: ReasonDoubleBitError, Severity: finding.Fatal, Period: pollPeriod,
		Description: "A GPU counted uncorrectable (double-bit) ECC errors since its last reset; the message names the " +
			"memories affected (device memory, SRAM, L2 cache…). Data in GPU memory may be corrupt. The key is the GPU's " +
			"PCI address.",
		Action:   "Drain the node, then reset the GPU (nvidia-smi -r) or reboot. Replace the node if the errors come back.",
		Recovery: recoveryPolledFatal,
	})
	pageRetirement = declare(reason.Reason{
		Name: ReasonPageRetirement, Severity: finding.Warning, Period: pollPeriod,
		Description: "A GPU has retired 10 or more memory pages for ECC errors, or a retirement is pending until the next " +
			"GPU reset; on Ampere and later GPUs, a row remap is pending or has failed.",
		Action: "Reset the GPU or reboot to apply what is pending. A failed row remap, or retirements that keep growing, " +
			"mean the GPU should be replaced: replace the node.",
		Recovery: "Nothing to recover: a Warning is an event and never sets the condition. It is sent again when the " +
			"counts change.",
	})
	nvlinkError = declare(reason.Reason{
		Name: ReasonNVLinkError, Severity: finding.Fatal, Period: pollPeriod,
		Description: "A GPU's NVLink replay, recovery or CRC error counters rose since the previous poll, or an NVLink " +
			"that was up at the first poll went down. GPU-to-GPU traffic is slow or failing.",
		Action: "Drain the node and check the links (nvidia-smi nvlink -s, -e); reset the GPUs or reboot, and replace the " +
			"node if errors continue.",
		Recovery: "Clears after 2 consecutive polls without new errors and with every link up.",
	})
	pcieError = declare(reason.Reason{
		Name: ReasonPCIeError, Severity: finding.Warning, Period: pollPeriod,
		Description: "A GPU's PCIe replay counter rises faster than 8 per minute: the link to the GPU keeps retrying " +
			"transfers (signal integrity, riser or slot); or, on 2 consecutive polls, its link runs with fewer lanes than " +
			"the GPU and the slot support, or at a lower generation while the GPU is busy (P0, not idle; an idle GPU " +
			"lowers its link generation to save power, which is not reported).",
		Action: "Check the link in nvidia-smi -q -d PCIE (and lspci -vv: LnkSta against LnkCap). Fewer lanes or a lower " +
			"generation under load halve host-to-GPU bandwidth or worse: reseat or replace the riser, or replace the node; " +
			"if one GPU keeps replaying, replace the node.",
		Recovery: "Nothing to recover: a Warning is an event and never sets the condition. It is sent once per episode, " +
			"again when the link's state changes, and again after the GPU has been healthy for 2 polls.",
	})
	thermalError = declare(reason.Reason{
		Name: ReasonThermalError, Severity: finding.Warning, Period: pollPeriod,
		Description: "A GPU's clocks are slowed down for heat (clock event reasons sw_thermal, hw_thermal, or hw_slowdown " +
			"without a finer cause, which must be seen on 2 consecutive polls since NVML also sets it for a moment " +
			"during a performance state change). Idle, application clocks, SW power cap, sync boost and display " +
			"clocks are normal operation and not reported.",
		Action: "Check temperatures (nvidia-smi -q -d TEMPERATURE,PERFORMANCE). Sustained throttling slows jobs; a GPU " +
			"much hotter than its peers points to cooling hardware: replace the node.",
		Recovery: "Nothing to recover: a Warning is an event and never sets the condition. It is sent again when the " +
			"throttling causes change.",
	})
	powerError = declare(reason.Reason{
		Name: ReasonPowerError, Severity: finding.Warning, Period: pollPeriod,
		Description: "A GPU's clocks are slowed down by the hardware power brake (hw_power_brake): the board or the power " +
			"supply asserted an external power limit.",
		Action: "Check power readings (nvidia-smi -q -d POWER,PERFORMANCE); a power brake that persists on one node is a " +
			"hardware problem: replace the node.",
		Recovery: recoveryEpisode,
	})
	deviceCountMismatch = declare(reason.Reason{
		Name: ReasonDeviceCountMismatch, Severity: finding.Fatal, Period: pollPeriod,
		Description: "On two consecutive polls, the GPUs NVML can use differ in number from the /dev/nvidia<N> device " +
			"files (key device-files), or are fewer than the instance type has (key instance-type, from IMDS). A GPU fell " +
			"off the bus or did not come up.",
		Action: "Check nvidia-smi and the kernel log (XID 79, \"fallen off the bus\"); reboot, and replace the node if a " +
			"GPU is still missing.",
		Recovery: recoveryPolledFatal,
	})
	fabricManager = declare(reason.Reason{
		Name: ReasonFabricManager, Severity: finding.Fatal, Period: pollPeriod,
		Description: "On NVSwitch systems, a GPU's fabric registration failed, its fabric state is unknown, or it is still " +
			"not started or in progress after 10 minutes: NVIDIA Fabric Manager is not running or failed, and multi-GPU " +
			"jobs cannot use NVLink.",
		Action: "Check systemctl status nvidia-fabricmanager and its journal; its version must match the driver's. " +
			"Restart it or reboot the node.",
		Recovery: recoveryPolledFatal,
	})
	fabricError = declare(reason.Reason{
		Name: ReasonFabricError, Severity: finding.Fatal, Period: pollPeriod,
		Description: "A GPU's fabric health mask reports degraded bandwidth, route recovery, an unhealthy route, an access " +
			"timeout recovery or an incorrect configuration, or the driver's fabric health summary " +
			"(nvmlGpuFabricInfo_v3, recent drivers) says unhealthy.",
		Action: "Check the Fabric Manager journal and the Fabric section of nvidia-smi -q; reboot, and replace the node if " +
			"the fault persists.",
		Recovery: recoveryPolledFatal,
	})
	infoROM = declare(reason.Reason{
		Name: ReasonInfoROM, Severity: finding.Warning, Period: pollPeriod,
		Description: "A GPU's InfoROM (the on-board store of its configuration and of its ECC and page retirement " +
			"records) fails nvmlDeviceValidateInforom's checksum. The GPU may still work, but what it records there, " +
			"retired pages included, may be lost or wrong. DCGM's InfoROM health watch reports the same as a warning " +
			"(DCGM_FR_CORRUPT_INFOROM, EKS's agent: DCGMHealthCode9).",
		Action: "Drain the node and reset the GPU or reboot; if the InfoROM is still corrupt, it must be reflashed by the " +
			"vendor: replace the node.",
		Recovery: recoveryEpisode,
	})
	nvmlUnavailable = declare(reason.Reason{
		Name: ReasonNVMLUnavailable, Severity: finding.Warning,
		Description: "NVML (libnvidia-ml.so.1) could not be initialised for 5 minutes, or an NVML call hung for 30 s. The " +
			"NVML checks are suspended; XIDs are still read from the kernel log.",
		Action: "Check that the NVIDIA driver is loaded (nvidia-smi, lsmod) and where its library is (--nvml-library, " +
			"e.g. for the GPU operator's driver container). A driver/library version mismatch needs a reboot; a hung NVML " +
			"usually means a GPU fell off the bus (see the XID findings).",
		Recovery: "Nothing to recover: a Warning is an event and never sets the condition. It is sent once per outage.",
	})
)

// Source is the finding source of everything read through NVML. It must
// differ from the kmsg source for the pipeline to merge the two sightings
// of one XID.
const Source = "nvml"

// result is one problem a poll found; the tracker turns results into
// raises and clears.
type result struct {
	reason.Result
	// Sig, for a Warning, is what makes a repeat worth another event
	// (e.g. the number of retired pages); "" means one event per episode.
	Sig string
	// Confirm is how many consecutive polls must see the problem before it
	// is raised (0 or 1: the first); it keeps start-up races (device files
	// created a moment after the driver loads) from flapping a condition.
	Confirm int
}
