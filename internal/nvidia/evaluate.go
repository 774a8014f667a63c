package nvidia

import (
	"fmt"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Limits are the thresholds of the counter checks.
type Limits struct {
	// RetiredPages warns when this many pages (SBE + DBE causes) are
	// retired; go-dcgm's max-retired-pages policy, which NMA uses, is 10.
	RetiredPages int
	// NVLinkErrors is how many link errors (replay, recovery, CRC) in one
	// poll, summed over a GPU's links, are a fault. 1 = any, as DCGM's
	// NVLink policy.
	NVLinkErrors uint64
	// PCIeReplaysPerMinute is DCGM's health-watch PCIe threshold.
	PCIeReplaysPerMinute float64
	// FabricStartGrace is how long a GPU's fabric may stay not started or
	// in progress before Fabric Manager is reported as not running.
	FabricStartGrace time.Duration
}

// DefaultLimits are used for zero fields.
var DefaultLimits = Limits{RetiredPages: 10, NVLinkErrors: 1, PCIeReplaysPerMinute: 8, FabricStartGrace: 10 * time.Minute}

func (l Limits) withDefaults() Limits {
	if l.RetiredPages <= 0 {
		l.RetiredPages = DefaultLimits.RetiredPages
	}
	if l.NVLinkErrors == 0 {
		l.NVLinkErrors = DefaultLimits.NVLinkErrors
	}
	if l.PCIeReplaysPerMinute <= 0 {
		l.PCIeReplaysPerMinute = DefaultLimits.PCIeReplaysPerMinute
	}
	if l.FabricStartGrace <= 0 {
		l.FabricStartGrace = DefaultLimits.FabricStartGrace
	}
	return l
}

// devState is what the checks remember about one GPU between polls.
type devState struct {
	links map[int]*linkState
	// pcie is the last replay count and when it was read.
	pcie     uint64
	pcieAt   time.Time
	pcieSeen bool
	// fabricWait is when the GPU's fabric was first seen not yet started
	// (zero while it is complete).
	fabricWait time.Time
	// genDown is the link generation's verdict of the last poll that could
	// judge it (the GPU busy): an idle GPU neither confirms nor clears it.
	genDown string
}

// linkState is one NVLink's baseline: whether it was up at the first read,
// and its counters at the previous read.
type linkState struct {
	wasActive bool
	prev      map[nvml.NvLinkErrorCounter]uint64
}

func newDevState() *devState { return &devState{links: map[int]*linkState{}} }

// Clock event reason bits (nvml.h nvmlClocksEventReason*). go-nvml names
// some of them only with the older "ClocksThrottleReason" prefix.
const (
	clkGpuIdle      = uint64(nvml.ClocksEventReasonGpuIdle)
	clkHwSlowdown   = uint64(nvml.ClocksThrottleReasonHwSlowdown)
	clkSwThermal    = uint64(nvml.ClocksEventReasonSwThermalSlowdown)
	clkHwThermal    = uint64(nvml.ClocksThrottleReasonHwThermalSlowdown)
	clkHwPowerBrake = uint64(nvml.ClocksThrottleReasonHwPowerBrakeSlowdown)
)

// evalDevice judges one GPU's sample against its state and appends what is
// wrong to out; cov records which checks ran.
func evalDevice(key string, st *devState, s sample, now time.Time, lim Limits, cov coverage) []result {
	var out []result
	mark := func(reason string, ok bool) {
		cov.keys[reason+"\x00"+key] = ok
		if !ok {
			cov.reasons[reason] = false
		}
	}

	// Double-bit (uncorrectable) ECC errors since the last GPU reset.
	mark(ReasonDoubleBitError, fine(s.ecc.ret))
	if s.ecc.ret == nvml.SUCCESS && s.ecc.total > 0 {
		where := "unknown"
		if len(s.ecc.byLocation) > 0 {
			var parts []string
			for _, l := range s.ecc.byLocation {
				parts = append(parts, fmt.Sprintf("%s (%d)", l.name, l.count))
			}
			where = strings.Join(parts, ", ")
		}
		out = append(out, result{Result: doubleBitError.Result(fmt.Sprintf("detected %d Nvidia Double Bit error(s) on location %s on GPU %s", s.ecc.total, where, key), key)})
	}

	out = append(out, evalPages(key, s, lim, mark)...)
	out = append(out, evalNVLink(key, st, s.nvlink, lim, mark)...)

	out = append(out, evalPCIe(key, st, s, now, lim, mark)...)

	// Clock slowdowns the hardware or driver imposed for heat or power.
	mark(ReasonThermalError, fine(s.clocks.ret))
	mark(ReasonPowerError, fine(s.clocks.ret))
	if s.clocks.ret == nvml.SUCCESS {
		var thermal []string
		if s.clocks.reasons&clkSwThermal != 0 {
			thermal = append(thermal, "sw_thermal")
		}
		if s.clocks.reasons&clkHwThermal != 0 {
			thermal = append(thermal, "hw_thermal")
		}
		// HW slowdown without a finer bit: the driver does not say why;
		// an over-temperature is its most common cause.
		if s.clocks.reasons&clkHwSlowdown != 0 && s.clocks.reasons&(clkHwThermal|clkHwPowerBrake) == 0 {
			thermal = append(thermal, "hw_slowdown")
		}
		if len(thermal) > 0 {
			names := strings.Join(thermal, ", ")
			r := result{Result: thermalError.Result(fmt.Sprintf("detected GPU thermals outside of thresholds on GPU %s: clocks slowed down (%s)", key, names), key), Sig: names}
			if names == "hw_slowdown" {
				// NVML: the bare bit "may be also reported during PState or
				// clock change"; a slowdown that lasts is seen twice.
				r.Confirm = 2
			}
			out = append(out, r)
		}
		if s.clocks.reasons&clkHwPowerBrake != 0 {
			out = append(out, result{Result: powerError.Result(fmt.Sprintf("detected power outside of thresholds on GPU %s: clocks slowed down by the hardware power brake (hw_power_brake)", key), key)})
		}
	}

	mark(ReasonInfoROM, inforomChecked(s.inforom))
	if s.inforom == nvml.ERROR_CORRUPTED_INFOROM {
		out = append(out, result{Result: infoROM.Result(fmt.Sprintf("the InfoROM of GPU %s is corrupt (nvmlDeviceValidateInforom failed its checksum)", key), key)})
	}

	mark(ReasonFabricError, fine(s.fabric.ret))
	if s.fabric.ret == nvml.SUCCESS && s.fabric.hasMask {
		if faults := fabricGPUFaults(s.fabric); len(faults) > 0 {
			out = append(out, result{Result: fabricError.Result(fmt.Sprintf("GPU fabric health mask 0x%x: %s on GPU %s", s.fabric.mask, strings.Join(faults, ", "), key), key)})
		}
	}
	return out
}

// evalPCIe judges the link to the host: replays as a rate from the
// second read on, and a link trained below what the GPU and the slot can
// do. Both are one finding per GPU (the reason is NMA's PCIe reason).
func evalPCIe(key string, st *devState, s sample, now time.Time, lim Limits, mark func(string, bool)) []result {
	mark(ReasonPCIeError, fine(s.pcie.ret) && fine(s.link.widthRet) && fine(s.link.genRet))
	var msgs, sig []string
	if s.pcie.ret == nvml.SUCCESS {
		if st.pcieSeen && s.pcie.replays >= st.pcie {
			delta := s.pcie.replays - st.pcie
			if mins := now.Sub(st.pcieAt).Minutes(); mins > 0 && float64(delta)/mins > lim.PCIeReplaysPerMinute {
				msgs = append(msgs, fmt.Sprintf("detected %d PCIe replays in %s (%.1f per minute, threshold %g) on GPU %s",
					delta, now.Sub(st.pcieAt).Round(time.Second), float64(delta)/mins, lim.PCIeReplaysPerMinute, key))
				sig = append(sig, "replays")
			}
		}
		st.pcie, st.pcieAt, st.pcieSeen = s.pcie.replays, now, true
	}
	confirm := 1
	if down := linkDowngrade(st, s); down != "" {
		msgs = append(msgs, fmt.Sprintf("the PCIe link of GPU %s runs at %s", key, down))
		sig = append(sig, down)
		if len(msgs) == 1 {
			// A link retrains now and then; one that stays down is seen
			// on two polls.
			confirm = 2
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return []result{{Result: pcieError.Result(strings.Join(msgs, "; "), key), Confirm: confirm, Sig: strings.Join(sig, "; ")}}
}

// linkDowngrade describes a link trained below its maximum, or returns "".
// Width is judged always: NVIDIA GPUs keep their lanes at idle, and fewer
// lanes mean a bad riser, slot or retimer. Generation is judged only while
// the GPU works at full performance (P0 and not idle): every NVIDIA GPU
// drops its link to Gen1 when idle to save power, so a current generation
// below the maximum says nothing by itself (sichek compares it only when
// the GPU is not idle; DCGM only in its active PCIe diagnostic). While it
// cannot be judged, the last busy poll's verdict stands, so that a
// downgraded link is one episode across idle spells, not an event per job.
func linkDowngrade(st *devState, s sample) string {
	l := s.link
	var parts []string
	if l.widthRet == nvml.SUCCESS && l.width > 0 && l.width < l.maxWidth {
		parts = append(parts, fmt.Sprintf("x%d of x%d lanes", l.width, l.maxWidth))
	}
	if l.genRet == nvml.SUCCESS && busy(s) {
		st.genDown = ""
		if l.gen > 0 && l.gen < l.maxGen {
			st.genDown = fmt.Sprintf("Gen%d of Gen%d while busy (P0)", l.gen, l.maxGen)
		}
	}
	if st.genDown != "" {
		parts = append(parts, st.genDown)
	}
	return strings.Join(parts, " and ")
}

// busy reports whether the GPU runs at full performance, the only state in
// which its PCIe link must be at full speed.
func busy(s sample) bool {
	return s.pstateRet == nvml.SUCCESS && s.pstate == nvml.PSTATE_0 &&
		s.clocks.ret == nvml.SUCCESS && s.clocks.reasons&clkGpuIdle == 0
}

// inforomChecked: the validation ran (either verdict) or cannot run here.
func inforomChecked(ret nvml.Return) bool {
	return ret == nvml.ERROR_CORRUPTED_INFOROM || fine(ret)
}

func evalPages(key string, s sample, lim Limits, mark func(string, bool)) []result {
	p, r := s.pages, s.remap
	mark(ReasonPageRetirement, fine(p.sbeRet) && fine(p.dbeRet) && fine(p.pendingRet) && fine(r.ret))
	var parts []string
	// Page retirement (up to Turing): a count, or one waiting for a reset.
	if p.sbeRet == nvml.SUCCESS || p.dbeRet == nvml.SUCCESS {
		if p.sbe+p.dbe >= lim.RetiredPages || (p.pendingRet == nvml.SUCCESS && p.pending) {
			msg := fmt.Sprintf("detected %d SBE, and %d DBE page retirements", p.sbe, p.dbe)
			if p.pending {
				msg += ", a retirement is pending until the GPU is reset"
			}
			parts = append(parts, msg)
		}
	}
	// Row remapping (Ampere and later) replaced page retirement.
	if r.ret == nvml.SUCCESS && (r.pending || r.failed) {
		state := "a row remap is pending until the GPU is reset"
		if r.failed {
			state = "a row remap failed"
		}
		parts = append(parts, fmt.Sprintf("%s (%d correctable, %d uncorrectable rows remapped)", state, r.corr, r.unc))
	}
	if len(parts) == 0 {
		return nil
	}
	return []result{{Result: pageRetirement.Result(strings.Join(parts, "; ")+" on GPU "+key, key), Sig: fmt.Sprint(p.sbe, p.dbe, p.pending, r.corr, r.unc, r.pending, r.failed)}}
}

func evalNVLink(key string, st *devState, s nvlinkSample, lim Limits, mark func(string, bool)) []result {
	mark(ReasonNVLinkError, fine(s.ret))
	var total uint64
	var details, down []string
	for _, ls := range s.links {
		b := st.links[ls.link]
		if b == nil {
			// The first read is the baseline: lifetime counters say
			// nothing about now (NMA's zero baseline fired on them).
			st.links[ls.link] = &linkState{wasActive: ls.active, prev: ls.counters}
			continue
		}
		if b.wasActive && !ls.active {
			down = append(down, fmt.Sprint(ls.link))
		}
		if !ls.active {
			continue
		}
		for _, c := range nvlinkCounters {
			cur, ok := ls.counters[c.c]
			if !ok {
				continue
			}
			if prev, had := b.prev[c.c]; had && cur > prev {
				total += cur - prev
				details = append(details, fmt.Sprintf("link %d %s +%d", ls.link, c.name, cur-prev))
			}
			// A counter that went down was reset: it is the new baseline.
			b.prev[c.c] = cur
		}
	}
	var msgs []string
	if total > 0 && total >= lim.NVLinkErrors {
		msgs = append(msgs, fmt.Sprintf("detected %d NVLink errors on GPU %s (%s)", total, key, strings.Join(details, ", ")))
	}
	if len(down) > 0 {
		msgs = append(msgs, fmt.Sprintf("NVLink link(s) %s of GPU %s went down", strings.Join(down, ", "), key))
	}
	if len(msgs) == 0 {
		return nil
	}
	return []result{{Result: nvlinkError.Result(strings.Join(msgs, "; "), key)}}
}

// fabricHealthFields decode nvmlGpuFabricInfo_v2+ healthMask as DCGM's
// DCGM_FI_DEV_FABRIC_HEALTH_MASK is judged (detection.md B1): each 2-bit
// field is a fault only when it reads 1 (TRUE; 0 is "not supported", 2
// FALSE), and the configuration field is a fault at 2 or more (1 = none).
var fabricHealthFields = []struct {
	name         string
	shift, width uint32
	faultFrom    uint32
	exact        bool
}{
	{"degraded_bw", nvml.GPU_FABRIC_HEALTH_MASK_SHIFT_DEGRADED_BW, nvml.GPU_FABRIC_HEALTH_MASK_WIDTH_DEGRADED_BW, 1, true},
	{"route_recovery", nvml.GPU_FABRIC_HEALTH_MASK_SHIFT_ROUTE_RECOVERY, nvml.GPU_FABRIC_HEALTH_MASK_WIDTH_ROUTE_RECOVERY, 1, true},
	{"route_unhealthy", nvml.GPU_FABRIC_HEALTH_MASK_SHIFT_ROUTE_UNHEALTHY, nvml.GPU_FABRIC_HEALTH_MASK_WIDTH_ROUTE_UNHEALTHY, 1, true},
	{"access_timeout_recovery", nvml.GPU_FABRIC_HEALTH_MASK_SHIFT_ACCESS_TIMEOUT_RECOVERY, nvml.GPU_FABRIC_HEALTH_MASK_WIDTH_ACCESS_TIMEOUT_RECOVERY, 1, true},
	{"incorrect_configuration", nvml.GPU_FABRIC_HEALTH_MASK_SHIFT_INCORRECT_CONFIGURATION, nvml.GPU_FABRIC_HEALTH_MASK_WIDTH_INCORRECT_CONFIGURATION, 2, false},
}

// fabricFaults lists the faulty fields of a health mask as name=value;
// bits from 12 up (partition, GFM state) are not faults.
func fabricFaults(mask uint32) []string {
	var out []string
	for _, f := range fabricHealthFields {
		v := (mask >> f.shift) & f.width
		if (f.exact && v == f.faultFrom) || (!f.exact && v >= f.faultFrom) {
			out = append(out, fmt.Sprintf("%s=%d", f.name, v))
		}
	}
	return out
}

// fabricGPUFaults lists what is wrong with a GPU's fabric health: the
// mask's faulty fields and the driver's summary when it says unhealthy.
func fabricGPUFaults(f fabricSample) []string {
	faults := fabricFaults(f.mask)
	if f.hasSummary && f.summary == nvml.GPU_FABRIC_HEALTH_SUMMARY_UNHEALTHY {
		faults = append(faults, "health_summary=unhealthy")
	}
	return faults
}

// fabricStatusName names a fabric state the way DCGM's Fabric Manager
// status field does.
func fabricStatusName(state uint8, status nvml.Return) string {
	switch state {
	case nvml.GPU_FABRIC_STATE_NOT_SUPPORTED:
		return "NotSupported"
	case nvml.GPU_FABRIC_STATE_NOT_STARTED:
		return "NotStarted"
	case nvml.GPU_FABRIC_STATE_IN_PROGRESS:
		return "InProgress"
	case nvml.GPU_FABRIC_STATE_COMPLETED:
		if status == nvml.SUCCESS {
			return "Success"
		}
		return "Failure"
	}
	return fmt.Sprintf("Unknown(%d)", state)
}

// gpuFabric is one GPU's fabric reading for the node-level judgement.
type gpuFabric struct {
	key string
	st  *devState
	s   fabricSample
}

// evalFabricManager judges Fabric Manager for the node: on NVSwitch
// systems every GPU's fabric registration must complete. A failed
// registration or an unknown state is reported at once; not started or in
// progress only after FabricStartGrace, since that is normal while the
// node boots and Fabric Manager starts (DCGM treats it as healthy forever,
// which misses a Fabric Manager that never started).
func evalFabricManager(gpus []gpuFabric, now time.Time, lim Limits, cov coverage) []result {
	ok := true
	var bad []string
	status := ""
	for _, g := range gpus {
		ok = ok && fine(g.s.ret)
		if g.s.ret != nvml.SUCCESS {
			continue
		}
		name := fabricStatusName(g.s.state, g.s.status)
		switch g.s.state {
		case nvml.GPU_FABRIC_STATE_NOT_SUPPORTED:
			g.st.fabricWait = time.Time{}
		case nvml.GPU_FABRIC_STATE_COMPLETED:
			g.st.fabricWait = time.Time{}
			if g.s.status != nvml.SUCCESS {
				bad = append(bad, fmt.Sprintf("GPU %s registration failed: %v", g.key, g.s.status))
				status = name
			}
		case nvml.GPU_FABRIC_STATE_NOT_STARTED, nvml.GPU_FABRIC_STATE_IN_PROGRESS:
			if g.st.fabricWait.IsZero() {
				g.st.fabricWait = now
			}
			if waited := now.Sub(g.st.fabricWait); waited >= lim.FabricStartGrace {
				bad = append(bad, fmt.Sprintf("GPU %s %s for %s", g.key, name, waited.Round(time.Second)))
				if status == "" {
					status = name
				}
			}
		default:
			bad = append(bad, fmt.Sprintf("GPU %s %s", g.key, name))
			if status == "" {
				status = name
			}
		}
	}
	cov.keys[ReasonFabricManager+"\x00"] = ok
	cov.reasons[ReasonFabricManager] = ok
	if len(bad) == 0 {
		return nil
	}
	detail := strings.Join(bad[:min(len(bad), 2)], "; ")
	if len(bad) > 2 {
		detail += fmt.Sprintf("; and %d more", len(bad)-2)
	}
	return []result{{Result: fabricManager.Result(fmt.Sprintf("Fabric Manager status: %s on %d of %d GPUs (%s)", status, len(bad), len(gpus), detail), "")}}
}
