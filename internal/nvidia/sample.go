package nvidia

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// A sample is every counter of one GPU read in one go on the NVML worker.
// It holds only values and return codes, so that judging it (baselines,
// thresholds) happens on the detector's goroutine and never races with a
// worker that a timeout left behind.
type sample struct {
	ecc    eccSample
	pages  pagesSample
	remap  remapSample
	nvlink nvlinkSample
	pcie   pcieSample
	clocks clocksSample
	fabric fabricSample
	link   pcieLinkSample
	// pstate is the performance state (0 = P0, full performance).
	pstate    nvml.Pstates
	pstateRet nvml.Return
	temp      uint32
	tempRet   nvml.Return
	// inforom is nvmlDeviceValidateInforom's verdict: SUCCESS or
	// ERROR_CORRUPTED_INFOROM when it could check.
	inforom nvml.Return
}

type eccSample struct {
	ret   nvml.Return
	total uint64
	// byLocation names where the uncorrected errors are, when the driver
	// can say.
	byLocation []locationCount
}

type locationCount struct {
	name  string
	count uint64
}

type pagesSample struct {
	sbeRet, dbeRet, pendingRet nvml.Return
	sbe, dbe                   int
	pending                    bool
}

type remapSample struct {
	ret             nvml.Return
	corr, unc       int
	pending, failed bool
}

type nvlinkSample struct {
	// ret is SUCCESS when at least one link answered, NOT_SUPPORTED when
	// the GPU has no NVLink, else the first error.
	ret   nvml.Return
	links []linkSample
}

type linkSample struct {
	link     int
	active   bool
	counters map[nvml.NvLinkErrorCounter]uint64
}

type pcieSample struct {
	ret     nvml.Return
	replays uint64
}

type clocksSample struct {
	ret     nvml.Return
	reasons uint64
}

type fabricSample struct {
	ret     nvml.Return
	state   uint8
	status  nvml.Return
	mask    uint32
	hasMask bool
	// summary is the driver's own verdict (nvmlGpuFabricInfo_v3+).
	summary    uint8
	hasSummary bool
}

// pcieLinkSample is the negotiated PCIe link against the most the GPU and
// the slot can do together (nvmlDeviceGetMaxPcieLink*: a Gen5 GPU in a
// Gen4 slot has a maximum of 4).
type pcieLinkSample struct {
	widthRet, genRet nvml.Return
	width, maxWidth  int
	gen, maxGen      int
}

// nvlinkCounters are the link-level error counters DCGM's NVLink policy
// watches; DL_ECC_DATA counts corrected errors and is left out.
var nvlinkCounters = []struct {
	c    nvml.NvLinkErrorCounter
	name string
}{
	{nvml.NVLINK_ERROR_DL_REPLAY, "replay"},
	{nvml.NVLINK_ERROR_DL_RECOVERY, "recovery"},
	{nvml.NVLINK_ERROR_DL_CRC_FLIT, "crc_flit"},
	{nvml.NVLINK_ERROR_DL_CRC_DATA, "crc_data"},
}

// eccLocations are the memories whose uncorrected counts name the
// location in the message.
var eccLocations = []struct {
	loc  nvml.MemoryLocation
	name string
}{
	{nvml.MEMORY_LOCATION_DEVICE_MEMORY, "device memory"},
	{nvml.MEMORY_LOCATION_SRAM, "SRAM"},
	{nvml.MEMORY_LOCATION_L2_CACHE, "L2 cache"},
	{nvml.MEMORY_LOCATION_L1_CACHE, "L1 cache"},
	{nvml.MEMORY_LOCATION_REGISTER_FILE, "register file"},
}

// symbols tells which optional NVML entry points the loaded library has.
// go-nvml binds every function lazily, so calling one the installed driver
// lacks crashes the process instead of returning an error.
type symbols func(name string) bool

// fabricReader reads the GPU's fabric state and, where the driver has the
// versioned call, its health mask. It is a seam because go-nvml's
// versioned call cannot be mocked (it needs a real device handle).
type fabricReader func(dev nvml.Device, has symbols) fabricSample

// readFabric is the real fabricReader.
func readFabric(dev nvml.Device, has symbols) fabricSample {
	if has("nvmlDeviceGetGpuFabricInfoV") {
		h := dev.GetGpuFabricInfoV()
		if info, ret := h.V3(); ret == nvml.SUCCESS {
			return fabricSample{ret: ret, state: info.State, status: nvml.Return(info.Status), mask: info.HealthMask, hasMask: true,
				summary: info.HealthSummary, hasSummary: true}
		}
		if info, ret := h.V2(); ret == nvml.SUCCESS {
			return fabricSample{ret: ret, state: info.State, status: nvml.Return(info.Status), mask: info.HealthMask, hasMask: true}
		}
	}
	if !has("nvmlDeviceGetGpuFabricInfo") {
		return fabricSample{ret: nvml.ERROR_FUNCTION_NOT_FOUND}
	}
	return fabricV1(dev)
}

// fabricV1 reads state and status only (drivers before the health mask).
func fabricV1(dev nvml.Device) fabricSample {
	info, ret := dev.GetGpuFabricInfo()
	return fabricSample{ret: ret, state: info.State, status: nvml.Return(info.Status)}
}

// sampleDevice reads one GPU. It runs on the NVML worker.
func sampleDevice(dev nvml.Device, has symbols, fabric fabricReader) sample {
	var s sample

	s.ecc.total, s.ecc.ret = dev.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC)
	if s.ecc.ret == nvml.SUCCESS && s.ecc.total > 0 {
		for _, l := range eccLocations {
			if n, ret := dev.GetMemoryErrorCounter(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC, l.loc); ret == nvml.SUCCESS && n > 0 {
				s.ecc.byLocation = append(s.ecc.byLocation, locationCount{l.name, n})
			}
		}
	}

	var pages []uint64
	pages, s.pages.sbeRet = dev.GetRetiredPages(nvml.PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS)
	s.pages.sbe = len(pages)
	pages, s.pages.dbeRet = dev.GetRetiredPages(nvml.PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)
	s.pages.dbe = len(pages)
	var pending nvml.EnableState
	pending, s.pages.pendingRet = dev.GetRetiredPagesPendingStatus()
	s.pages.pending = pending == nvml.FEATURE_ENABLED

	if has("nvmlDeviceGetRemappedRows") {
		s.remap.corr, s.remap.unc, s.remap.pending, s.remap.failed, s.remap.ret = dev.GetRemappedRows()
	} else {
		s.remap.ret = nvml.ERROR_FUNCTION_NOT_FOUND
	}

	s.nvlink = sampleNVLink(dev)

	var replays int
	replays, s.pcie.ret = dev.GetPcieReplayCounter()
	if replays > 0 {
		s.pcie.replays = uint64(replays)
	}

	switch {
	case has("nvmlDeviceGetCurrentClocksEventReasons"):
		s.clocks.reasons, s.clocks.ret = dev.GetCurrentClocksEventReasons()
	case has("nvmlDeviceGetCurrentClocksThrottleReasons"):
		s.clocks.reasons, s.clocks.ret = dev.GetCurrentClocksThrottleReasons()
	default:
		s.clocks.ret = nvml.ERROR_FUNCTION_NOT_FOUND
	}

	s.fabric = fabric(dev, has)
	s.link = samplePCIeLink(dev)
	s.pstate, s.pstateRet = dev.GetPerformanceState()
	s.temp, s.tempRet = dev.GetTemperature(nvml.TEMPERATURE_GPU)
	if has("nvmlDeviceValidateInforom") {
		s.inforom = dev.ValidateInforom()
	} else {
		s.inforom = nvml.ERROR_FUNCTION_NOT_FOUND
	}
	return s
}

func samplePCIeLink(dev nvml.Device) pcieLinkSample {
	var l pcieLinkSample
	both := func(a, b nvml.Return) nvml.Return {
		if a != nvml.SUCCESS {
			return a
		}
		return b
	}
	var r1, r2 nvml.Return
	l.width, r1 = dev.GetCurrPcieLinkWidth()
	l.maxWidth, r2 = dev.GetMaxPcieLinkWidth()
	l.widthRet = both(r1, r2)
	l.gen, r1 = dev.GetCurrPcieLinkGeneration()
	l.maxGen, r2 = dev.GetMaxPcieLinkGeneration()
	l.genRet = both(r1, r2)
	return l
}

func sampleNVLink(dev nvml.Device) nvlinkSample {
	out := nvlinkSample{ret: nvml.ERROR_NOT_SUPPORTED}
	failed := nvml.SUCCESS
	for l := 0; l < nvml.NVLINK_MAX_LINKS; l++ {
		state, ret := dev.GetNvLinkState(l)
		switch ret {
		case nvml.SUCCESS:
		case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_INVALID_ARGUMENT:
			// No NVLink at all, or past the last link this GPU has.
			if l == 0 && ret == nvml.ERROR_NOT_SUPPORTED {
				return out
			}
			continue
		default:
			if failed == nvml.SUCCESS {
				failed = ret
			}
			continue
		}
		ls := linkSample{link: l, active: state == nvml.FEATURE_ENABLED, counters: map[nvml.NvLinkErrorCounter]uint64{}}
		if ls.active {
			for _, c := range nvlinkCounters {
				if v, ret := dev.GetNvLinkErrorCounter(l, c.c); ret == nvml.SUCCESS {
					ls.counters[c.c] = v
				}
			}
		}
		out.links = append(out.links, ls)
	}
	switch {
	case failed != nvml.SUCCESS:
		// Links that answered are still judged, but a link that did not
		// must not count as a pass.
		out.ret = failed
	case len(out.links) > 0:
		out.ret = nvml.SUCCESS
	}
	return out
}

// fine reports whether a read either worked or cannot work on this GPU
// (feature absent): both mean the check ran and found nothing wrong.
func fine(ret nvml.Return) bool {
	switch ret {
	case nvml.SUCCESS, nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND:
		return true
	}
	return false
}
