package nvidia

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// maxXIDs is how many of a GPU's latest NVML XID events its status keeps.
const maxXIDs = 5

// clockReasonNames name the clock event reason bits as DCGM's field 112
// suffix does (detection.md), plus the two newer bits.
var clockReasonNames = []struct {
	bit  uint64
	name string
}{
	{nvml.ClocksEventReasonGpuIdle, "gpu_idle"},
	{nvml.ClocksEventReasonApplicationsClocksSetting, "clocks_setting"},
	{nvml.ClocksEventReasonSwPowerCap, "sw_power_cap"},
	{clkHwSlowdown, "hw_slowdown"},
	{nvml.ClocksEventReasonSyncBoost, "sync_boost"},
	{clkSwThermal, "sw_thermal"},
	{clkHwThermal, "hw_thermal"},
	{clkHwPowerBrake, "hw_power_brake"},
	{nvml.ClocksEventReasonDisplayClockSetting, "display_clocks"},
	{nvml.ClocksEventReasonBoardLimit, "board_limit"},
	{nvml.ClocksEventReasonReliability, "reliability"},
}

func clockReasons(mask uint64) []string {
	var out []string
	for _, r := range clockReasonNames {
		if mask&r.bit != 0 {
			out = append(out, r.name)
		}
	}
	return out
}

func fabricSummaryName(v uint8) string {
	switch v {
	case nvml.GPU_FABRIC_HEALTH_SUMMARY_NOT_SUPPORTED:
		return ""
	case nvml.GPU_FABRIC_HEALTH_SUMMARY_HEALTHY:
		return "Healthy"
	case nvml.GPU_FABRIC_HEALTH_SUMMARY_UNHEALTHY:
		return "Unhealthy"
	case nvml.GPU_FABRIC_HEALTH_SUMMARY_LIMITED_CAPACITY:
		return "LimitedCapacity"
	}
	return "Unknown"
}

// whyUnread says why a reading is missing, for the status.
func whyUnread(ret nvml.Return) string {
	switch ret {
	case nvml.ERROR_NOT_SUPPORTED:
		return "not supported by this GPU"
	case nvml.ERROR_FUNCTION_NOT_FOUND:
		return "not in this driver's NVML"
	}
	return "NVML error: " + ret.Error()
}

// gpuStatus turns one GPU's sample into its status entry.
func gpuStatus(g gpu, s sample, xids []XIDEvent) GPUStatus {
	out := GPUStatus{Index: g.index, PCI: g.key, Name: g.name, UUID: g.uuid, XIDs: xids,
		Lost: s.ecc.ret == nvml.ERROR_GPU_IS_LOST || s.pcie.ret == nvml.ERROR_GPU_IS_LOST}
	unread := map[string]string{}
	read := func(name string, ret nvml.Return) bool {
		if ret != nvml.SUCCESS {
			unread[name] = whyUnread(ret)
		}
		return ret == nvml.SUCCESS
	}

	if read("temperature", s.tempRet) {
		t := s.temp
		out.TemperatureC = &t
	}
	if read("ecc", s.ecc.ret) {
		n := s.ecc.total
		out.UncorrectedECC = &n
	}
	if p := s.pages; read("retiredPages", firstFailure(p.sbeRet, p.dbeRet, p.pendingRet)) {
		out.RetiredPages = &RetiredPages{SBE: p.sbe, DBE: p.dbe, Pending: p.pending}
	}
	if r := s.remap; read("remappedRows", r.ret) {
		out.RemappedRows = &RemappedRows{Correctable: r.corr, Uncorrectable: r.unc, Pending: r.pending, Failed: r.failed}
	}
	if read("nvlink", s.nvlink.ret) {
		l := &NVLinks{Total: len(s.nvlink.links)}
		for _, ls := range s.nvlink.links {
			if ls.active {
				l.Up++
			}
		}
		out.NVLinks = l
	}

	p := &PCIeStatus{}
	if read("pcieLinkWidth", s.link.widthRet) {
		p.Width, p.MaxWidth = s.link.width, s.link.maxWidth
	}
	if read("pcieLinkGen", s.link.genRet) {
		p.Gen, p.MaxGen = s.link.gen, s.link.maxGen
	}
	if read("pcieReplays", s.pcie.ret) {
		n := s.pcie.replays
		p.Replays = &n
	}
	if read("pstate", s.pstateRet) {
		ps := int(s.pstate)
		p.PState = &ps
	}
	if *p != (PCIeStatus{}) {
		out.PCIe = p
	}

	if read("clockEvents", s.clocks.ret) {
		out.ClockEvents = &ClockEvents{Mask: s.clocks.reasons, Reasons: clockReasons(s.clocks.reasons)}
	}
	if f := s.fabric; read("fabric", f.ret) {
		fs := &FabricStatus{State: fabricStatusName(f.state, f.status), Faults: fabricGPUFaults(f)}
		if f.hasMask {
			m := f.mask
			fs.HealthMask = &m
		}
		if f.hasSummary {
			fs.Summary = fabricSummaryName(f.summary)
		}
		out.Fabric = fs
	}
	switch s.inforom {
	case nvml.SUCCESS:
		out.InfoROM = "valid"
	case nvml.ERROR_CORRUPTED_INFOROM:
		out.InfoROM = "corrupt"
	default:
		read("inforom", s.inforom)
	}
	if len(unread) > 0 {
		out.Unchecked = unread
	}
	return out
}

func firstFailure(rets ...nvml.Return) nvml.Return {
	for _, r := range rets {
		if r != nvml.SUCCESS {
			return r
		}
	}
	return nvml.SUCCESS
}
