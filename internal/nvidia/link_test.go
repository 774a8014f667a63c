package nvidia

import (
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

func TestPCIeLinkWidthDowngrade(t *testing.T) {
	f := newFakeNVML(t, 2)
	g := f.gpus[1]
	s := f.healthyStart()

	g.set(func(g *fakeGPU) { g.width = 8 })
	// One poll is not enough: links retrain now and then.
	r := wantConfirmedRaise(t, f, s, ReasonPCIeError, finding.Warning, g.key())
	wantMessage(t, r, "the PCIe link of GPU 0000:11:00 runs at x8 of x16 lanes")
	// The same state is the same episode.
	wantNothing(t, f.next(s))
	// A further drop is news.
	g.set(func(g *fakeGPU) { g.width = 4 })
	r = wantRaise(t, f.next(s), ReasonPCIeError, finding.Warning, g.key())
	if !strings.Contains(r.Message, "x4 of x16 lanes") {
		t.Fatalf("message %q", r.Message)
	}
	// Recovery: two good polls end the episode; a new downgrade needs two
	// polls again.
	g.set(func(g *fakeGPU) { g.width = 16 })
	healthyFor(t, f, s, 2)
	g.set(func(g *fakeGPU) { g.width = 8 })
	wantConfirmedRaise(t, f, s, ReasonPCIeError, finding.Warning, g.key())
}

// TestPCIeLinkWidthBelowSlotIsNotADowngrade: the maximum is what the GPU
// and the slot can do together, so an x16 GPU in an x8 slot is healthy.
func TestPCIeLinkWidthBelowSlotIsNotADowngrade(t *testing.T) {
	f := newFakeNVML(t, 1)
	f.gpus[0].set(func(g *fakeGPU) { g.width, g.maxWidth, g.gen, g.maxGen = 8, 8, 4, 4 })
	s := f.healthyStart()
	healthyFor(t, f, s, 3)
}

func TestPCIeLinkGenerationOnlyWhenBusy(t *testing.T) {
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	// Idle: the driver drops the link to Gen1 to save power.
	g.set(func(g *fakeGPU) {
		g.gen, g.pstate, g.clocks = 1, nvml.PSTATE_8, nvml.ClocksEventReasonGpuIdle
	})
	s := f.healthyStart()
	healthyFor(t, f, s, 3)
	// P0 but idle (a context is open, nothing runs): still not judged.
	g.set(func(g *fakeGPU) { g.pstate = nvml.PSTATE_0 })
	healthyFor(t, f, s, 3)
	// Neither the performance state nor the clock reasons can be read:
	// not judged either.
	g.set(func(g *fakeGPU) { g.clocks, g.pstateRet = 0, nvml.ERROR_NOT_SUPPORTED })
	healthyFor(t, f, s, 3)
	g.set(func(g *fakeGPU) { g.pstateRet, g.clockRet = nvml.SUCCESS, nvml.ERROR_NOT_SUPPORTED })
	healthyFor(t, f, s, 3)

	// Busy at full performance on Gen1 of Gen5: a downgraded link.
	g.set(func(g *fakeGPU) { g.clockRet = nvml.SUCCESS })
	r := wantConfirmedRaise(t, f, s, ReasonPCIeError, finding.Warning, g.key())
	wantMessage(t, r, "the PCIe link of GPU 0000:10:00 runs at Gen1 of Gen5 while busy (P0)")
	// Width and generation at once are one finding.
	g.set(func(g *fakeGPU) { g.width = 8 })
	r = wantRaise(t, f.next(s), ReasonPCIeError, finding.Warning, g.key())
	if !strings.HasSuffix(r.Message, "runs at x8 of x16 lanes and Gen1 of Gen5 while busy (P0)") {
		t.Fatalf("message %q", r.Message)
	}
}

// TestPCIeLinkGenerationEpisodeSpansIdleSpells: a GPU whose link runs at a
// lower generation every time it works is one episode, not an event per
// job; only a busy poll at full speed ends it.
func TestPCIeLinkGenerationEpisodeSpansIdleSpells(t *testing.T) {
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	g.set(func(g *fakeGPU) { g.gen = 3 })
	_, s := f.session(f.options())
	f.poll(s)
	wantRaise(t, f.next(s), ReasonPCIeError, finding.Warning, g.key())
	for job := 0; job < 3; job++ {
		// Idle: Gen1, not judged; the verdict of the last busy poll stands.
		g.set(func(g *fakeGPU) { g.gen, g.pstate, g.clocks = 1, nvml.PSTATE_8, nvml.ClocksEventReasonGpuIdle })
		healthyFor(t, f, s, 3)
		// The next job: still Gen3, still the same episode.
		g.set(func(g *fakeGPU) { g.gen, g.pstate, g.clocks = 3, nvml.PSTATE_0, 0 })
		healthyFor(t, f, s, 2)
	}
	// Busy at full speed: the episode ends after two polls; a later
	// downgrade is news.
	g.set(func(g *fakeGPU) { g.gen = 5 })
	healthyFor(t, f, s, 2)
	g.set(func(g *fakeGPU) { g.gen = 3 })
	wantConfirmedRaise(t, f, s, ReasonPCIeError, finding.Warning, g.key())
}

// TestPCIeReplaysAndDowngradeAreOneFinding: both problems of one GPU's
// link make one finding whose message names both, raised at once because
// the replays need no confirmation.
func TestPCIeReplaysAndDowngradeAreOneFinding(t *testing.T) {
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	s := f.healthyStart()
	g.set(func(g *fakeGPU) { g.replays += 100; g.width = 8 })
	r := wantRaise(t, f.next(s), ReasonPCIeError, finding.Warning, g.key())
	wantMessage(t, r, "detected 100 PCIe replays in 1m0s (100.0 per minute, threshold 8) on GPU 0000:10:00; "+
		"the PCIe link of GPU 0000:10:00 runs at x8 of x16 lanes")
}

func TestPCIeLinkUnreadable(t *testing.T) {
	// Not supported (MIG or vGPU guests): no finding.
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	g.set(func(g *fakeGPU) { g.linkRet, g.width = nvml.ERROR_NOT_SUPPORTED, 1 })
	s := f.healthyStart()
	healthyFor(t, f, s, 2)

	// A failing read is neither a downgrade nor a pass: the episode of a
	// downgrade seen before does not end, so no second event comes when
	// the read works again.
	f2 := newFakeNVML(t, 1)
	g = f2.gpus[0]
	g.set(func(g *fakeGPU) { g.width = 8 })
	_, s = f2.session(f2.options())
	f2.poll(s)
	wantRaise(t, f2.next(s), ReasonPCIeError, finding.Warning, g.key())
	g.set(func(g *fakeGPU) { g.linkRet = nvml.ERROR_UNKNOWN })
	healthyFor(t, f2, s, 3)
	g.set(func(g *fakeGPU) { g.linkRet = nvml.SUCCESS })
	healthyFor(t, f2, s, 2)
}

func TestInfoROM(t *testing.T) {
	f := newFakeNVML(t, 2)
	g := f.gpus[0]
	s := f.healthyStart()

	g.set(func(g *fakeGPU) { g.inforomRet = nvml.ERROR_CORRUPTED_INFOROM })
	r := wantRaise(t, f.next(s), ReasonInfoROM, finding.Warning, g.key())
	wantMessage(t, r, "the InfoROM of GPU 0000:10:00 is corrupt (nvmlDeviceValidateInforom failed its checksum)")
	// One event per episode.
	healthyFor(t, f, s, 2)
	// Valid again (reflashed, or the GPU reset) for two polls: the next
	// corruption is a new event.
	g.set(func(g *fakeGPU) { g.inforomRet = nvml.SUCCESS })
	healthyFor(t, f, s, 2)
	g.set(func(g *fakeGPU) { g.inforomRet = nvml.ERROR_CORRUPTED_INFOROM })
	wantRaise(t, f.next(s), ReasonInfoROM, finding.Warning, g.key())

	// An error is no verdict: no finding, and no pass that would end the
	// episode.
	g.set(func(g *fakeGPU) { g.inforomRet = nvml.ERROR_UNKNOWN })
	healthyFor(t, f, s, 3)
	g.set(func(g *fakeGPU) { g.inforomRet = nvml.ERROR_CORRUPTED_INFOROM })
	healthyFor(t, f, s, 1)
}

func TestInfoROMNotSupportedOrMissing(t *testing.T) {
	f := newFakeNVML(t, 1)
	f.gpus[0].set(func(g *fakeGPU) { g.inforomRet = nvml.ERROR_NOT_SUPPORTED })
	s := f.healthyStart()
	healthyFor(t, f, s, 2)

	f2 := newFakeNVML(t, 1)
	f2.missing["nvmlDeviceValidateInforom"] = true
	f2.gpus[0].set(func(g *fakeGPU) { g.inforomRet = nvml.ERROR_CORRUPTED_INFOROM })
	_, s2 := f2.session(f2.options())
	wantNothing(t, f2.poll(s2))
	if n := len(f2.gpus[0].dev.ValidateInforomCalls()); n != 0 {
		t.Fatalf("called a function the driver lacks %d times", n)
	}
}

// TestHWSlowdownAloneNeedsTwoPolls: NVML sets the bare HW slowdown bit for
// a moment during performance state changes; only a lasting one is a
// thermal finding. Its finer causes are reported at once.
func TestHWSlowdownAloneNeedsTwoPolls(t *testing.T) {
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	s := f.healthyStart()
	for i := 0; i < 3; i++ {
		g.set(func(g *fakeGPU) { g.clocks = clkHwSlowdown })
		wantNothing(t, f.next(s))
		g.set(func(g *fakeGPU) { g.clocks = 0 })
		wantNothing(t, f.next(s))
	}
	g.set(func(g *fakeGPU) { g.clocks = clkHwSlowdown })
	r := wantConfirmedRaise(t, f, s, ReasonThermalError, finding.Warning, g.key())
	if !strings.HasSuffix(r.Message, "clocks slowed down (hw_slowdown)") {
		t.Fatalf("message %q", r.Message)
	}
	// The same GPU recovers and then throttles on HW thermal: at once.
	g.set(func(g *fakeGPU) { g.clocks = 0 })
	healthyFor(t, f, s, 2)
	g.set(func(g *fakeGPU) { g.clocks = clkHwSlowdown | clkHwThermal })
	wantRaise(t, f.next(s), ReasonThermalError, finding.Warning, g.key())
}

// TestBenignClockReasonsAreQuiet: only slowdowns for heat or power are
// reported, never the reasons that are normal operation.
func TestBenignClockReasonsAreQuiet(t *testing.T) {
	for _, bit := range []uint64{
		nvml.ClocksEventReasonGpuIdle, nvml.ClocksEventReasonApplicationsClocksSetting, nvml.ClocksEventReasonSwPowerCap,
		nvml.ClocksEventReasonSyncBoost, nvml.ClocksEventReasonDisplayClockSetting,
	} {
		f := newFakeNVML(t, 1)
		f.gpus[0].set(func(g *fakeGPU) { g.clocks = bit })
		s := f.healthyStart()
		healthyFor(t, f, s, 2)
	}
}

func TestClockReasonsUnreadable(t *testing.T) {
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	g.set(func(g *fakeGPU) { g.clocks = clkHwPowerBrake })
	_, s := f.session(f.options())
	wantRaise(t, f.poll(s), ReasonPowerError, finding.Warning, g.key())
	// The read fails: no finding, and the episode does not end.
	g.set(func(g *fakeGPU) { g.clockRet = nvml.ERROR_UNKNOWN })
	healthyFor(t, f, s, 3)
	g.set(func(g *fakeGPU) { g.clockRet = nvml.SUCCESS })
	healthyFor(t, f, s, 1)
	// Not supported: quiet.
	g.set(func(g *fakeGPU) { g.clockRet = nvml.ERROR_NOT_SUPPORTED })
	healthyFor(t, f, s, 3)
}

func TestFabricHealthSummary(t *testing.T) {
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	g.set(func(g *fakeGPU) {
		g.fabState, g.fabStat, g.fabMask, g.fabSum = nvml.GPU_FABRIC_STATE_COMPLETED, nvml.SUCCESS, 0x1aa, nvml.GPU_FABRIC_HEALTH_SUMMARY_HEALTHY
	})
	s := f.healthyStart()
	// Limited capacity is the driver's word for a degraded fabric that
	// still works; the mask says what degraded, and it is healthy here.
	g.set(func(g *fakeGPU) { g.fabSum = nvml.GPU_FABRIC_HEALTH_SUMMARY_LIMITED_CAPACITY })
	healthyFor(t, f, s, 2)
	g.set(func(g *fakeGPU) { g.fabSum = nvml.GPU_FABRIC_HEALTH_SUMMARY_UNHEALTHY })
	r := wantRaise(t, f.next(s), ReasonFabricError, finding.Fatal, g.key())
	wantMessage(t, r, "GPU fabric health mask 0x1aa: health_summary=unhealthy on GPU 0000:10:00")
	g.set(func(g *fakeGPU) { g.fabSum = nvml.GPU_FABRIC_HEALTH_SUMMARY_HEALTHY })
	recovers(t, f, s, ReasonFabricError, g.key())
}
