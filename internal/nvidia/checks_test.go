package nvidia

import (
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// healthyFor polls n times and asserts nothing was raised.
func healthyFor(t *testing.T, f *fakeNVML, s *session, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		wantNothing(t, f.next(s))
	}
}

// wantConfirmedRaise asserts a problem that must be seen on two
// consecutive polls: nothing on the first, its raise on the second.
func wantConfirmedRaise(t *testing.T, f *fakeNVML, s *session, reason string, sev finding.Severity, key string) finding.Finding {
	t.Helper()
	wantNothing(t, f.next(s))
	return wantRaise(t, f.next(s), reason, sev, key)
}

// recovers asserts that reason/key clears on the second passing poll, not
// the first.
func recovers(t *testing.T, f *fakeNVML, s *session, reason, key string) {
	t.Helper()
	rec := f.next(s)
	wantNoRaise(t, rec, reason)
	if c := clearsOf(rec.clears(), reason); len(c) != 0 {
		t.Fatalf("%s cleared after one passing poll: %+v", reason, c)
	}
	rec = f.next(s)
	var keyed []finding.Clear
	for _, c := range clearsOf(rec.clears(), reason) {
		// The first fully clean polls also sweep the reason (AllKeys).
		if !c.AllKeys {
			keyed = append(keyed, c)
		}
	}
	if len(keyed) != 1 || keyed[0].Key != key || keyed[0].Condition != finding.AcceleratedHardwareReady {
		t.Fatalf("want %s/%s cleared after two passing polls, got %+v", reason, key, rec.clears())
	}
}

func TestHealthyGPUsRaiseNothing(t *testing.T) {
	f := newFakeNVML(t, 8)
	// Lifetime counters that are non-zero at start are baselines, not
	// faults (NMA's zero baseline reported them on the first poll).
	for _, g := range f.gpus {
		g.set(func(g *fakeGPU) {
			g.replays = 5000
			g.nvCount[0] = map[nvml.NvLinkErrorCounter]uint64{nvml.NVLINK_ERROR_DL_REPLAY: 77, nvml.NVLINK_ERROR_DL_CRC_FLIT: 12}
			g.clocks = nvml.ClocksEventReasonGpuIdle | nvml.ClocksEventReasonSwPowerCap
			g.fabState, g.fabStat, g.fabMask = nvml.GPU_FABRIC_STATE_COMPLETED, nvml.SUCCESS, 0x1aa // every field FALSE, configuration none
			g.fabSum = nvml.GPU_FABRIC_HEALTH_SUMMARY_HEALTHY
			g.gen, g.pstate = 1, nvml.PSTATE_8 // an idle GPU's link saves power
			g.remap = [4]int{3, 1, 0, 0}
		})
	}
	s := f.healthyStart()
	healthyFor(t, f, s, 3)
}

func TestDoubleBitError(t *testing.T) {
	f := newFakeNVML(t, 2)
	s := f.healthyStart()
	g := f.gpus[1]
	g.set(func(g *fakeGPU) {
		g.dbe = 3
		g.dbeLoc = map[nvml.MemoryLocation]uint64{nvml.MEMORY_LOCATION_DEVICE_MEMORY: 2, nvml.MEMORY_LOCATION_SRAM: 1}
	})
	r := wantRaise(t, f.next(s), ReasonDoubleBitError, finding.Fatal, g.key())
	wantMessage(t, r, "detected 3 Nvidia Double Bit error(s) on location device memory (2), SRAM (1) on GPU 0000:11:00")
	// Still there: raised again, which the pipeline merges into the
	// active finding.
	wantRaise(t, f.next(s), ReasonDoubleBitError, finding.Fatal, g.key())
	// A GPU reset zeroes the volatile count.
	g.set(func(g *fakeGPU) { g.dbe, g.dbeLoc = 0, nil })
	recovers(t, f, s, ReasonDoubleBitError, g.key())
}

func TestDoubleBitErrorQuietWithECCDisabled(t *testing.T) {
	f := newFakeNVML(t, 1)
	f.gpus[0].set(func(g *fakeGPU) { g.eccRet, g.dbe = nvml.ERROR_NOT_SUPPORTED, 9 })
	f.healthyStart()
}

func TestPageRetirement(t *testing.T) {
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	g.set(func(g *fakeGPU) {
		g.pagesRet, g.remapRet, g.sbePages, g.dbePages = nvml.SUCCESS, nvml.ERROR_NOT_SUPPORTED, 6, 3
	})
	s := f.healthyStart() // 9 pages: under the threshold of 10

	g.set(func(g *fakeGPU) { g.sbePages = 7 })
	r := wantRaise(t, f.next(s), ReasonPageRetirement, finding.Warning, g.key())
	if !strings.HasPrefix(r.Message, "detected 7 SBE, and 3 DBE page retirements") {
		t.Fatalf("message %q", r.Message)
	}
	// A Warning is an event: the same state does not send it again.
	wantNothing(t, f.next(s))
	// More pages retired is news.
	g.set(func(g *fakeGPU) { g.dbePages = 4 })
	wantRaise(t, f.next(s), ReasonPageRetirement, finding.Warning, g.key())

	// Below the threshold but a retirement waits for a reset.
	g.set(func(g *fakeGPU) { g.sbePages, g.dbePages, g.pending = 0, 1, true })
	r = wantRaise(t, f.next(s), ReasonPageRetirement, finding.Warning, g.key())
	if !strings.Contains(r.Message, "pending") {
		t.Fatalf("message %q does not say pending", r.Message)
	}
}

func TestRowRemapping(t *testing.T) {
	for _, c := range []struct {
		name  string
		remap [4]int
		want  string
	}{
		{"pending", [4]int{0, 1, 1, 0}, "a row remap is pending until the GPU is reset (0 correctable, 1 uncorrectable rows remapped)"},
		{"failed", [4]int{2, 5, 0, 1}, "a row remap failed (2 correctable, 5 uncorrectable rows remapped)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeNVML(t, 1)
			g := f.gpus[0]
			s := f.healthyStart()
			g.set(func(g *fakeGPU) { g.remap = c.remap })
			r := wantRaise(t, f.next(s), ReasonPageRetirement, finding.Warning, g.key())
			if r.Message != c.want+" on GPU "+g.key() {
				t.Fatalf("message %q, want %q", r.Message, c.want)
			}
			// The episode ends after two good polls; a new one is a new event.
			g.set(func(g *fakeGPU) { g.remap = [4]int{} })
			healthyFor(t, f, s, 2)
			g.set(func(g *fakeGPU) { g.remap = c.remap })
			wantRaise(t, f.next(s), ReasonPageRetirement, finding.Warning, g.key())
		})
	}
}

func TestNVLinkError(t *testing.T) {
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	g.set(func(g *fakeGPU) {
		g.nvCount[1] = map[nvml.NvLinkErrorCounter]uint64{nvml.NVLINK_ERROR_DL_CRC_FLIT: 100, nvml.NVLINK_ERROR_DL_REPLAY: 4}
	})
	s := f.healthyStart() // baseline

	g.set(func(g *fakeGPU) {
		g.nvCount[1][nvml.NVLINK_ERROR_DL_CRC_FLIT] = 110
		g.nvCount[1][nvml.NVLINK_ERROR_DL_REPLAY] = 6
	})
	r := wantRaise(t, f.next(s), ReasonNVLinkError, finding.Fatal, g.key())
	wantMessage(t, r, "detected 12 NVLink errors on GPU 0000:10:00 (link 1 replay +2, link 1 crc_flit +10)")
	// No new errors: the finding recovers.
	recovers(t, f, s, ReasonNVLinkError, g.key())
	// A counter reset (driver reload) is a new baseline, not an error.
	g.set(func(g *fakeGPU) { g.nvCount[1][nvml.NVLINK_ERROR_DL_CRC_FLIT] = 0 })
	healthyFor(t, f, s, 1)
}

func TestNVLinkDown(t *testing.T) {
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	g.set(func(g *fakeGPU) { g.links = []bool{true, true, false} })
	s := f.healthyStart() // link 2 was down from the start: not ours to judge
	g.set(func(g *fakeGPU) { g.links[0] = false })
	r := wantRaise(t, f.next(s), ReasonNVLinkError, finding.Fatal, g.key())
	if !strings.Contains(r.Message, "NVLink link(s) 0 of GPU 0000:10:00 went down") {
		t.Fatalf("message %q", r.Message)
	}
	g.set(func(g *fakeGPU) { g.links[0] = true })
	recovers(t, f, s, ReasonNVLinkError, g.key())
}

func TestNVLinkAbsentIsQuiet(t *testing.T) {
	f := newFakeNVML(t, 1)
	f.gpus[0].set(func(g *fakeGPU) { g.links = nil })
	_, s := f.session(f.options())
	healthyFor(t, f, s, 2)
	if n := len(f.gpus[0].dev.GetNvLinkStateCalls()); n != 2 {
		t.Fatalf("a GPU without NVLink should be asked once per poll, was asked %d times", n)
	}
}

func TestNVLinkThreshold(t *testing.T) {
	f := newFakeNVML(t, 1)
	o := f.options()
	o.Limits.NVLinkErrors = 5
	g := f.gpus[0]
	g.set(func(g *fakeGPU) { g.nvCount[0] = map[nvml.NvLinkErrorCounter]uint64{nvml.NVLINK_ERROR_DL_REPLAY: 0} })
	_, s := f.session(o)
	f.poll(s)
	g.set(func(g *fakeGPU) { g.nvCount[0][nvml.NVLINK_ERROR_DL_REPLAY] = 4 })
	healthyFor(t, f, s, 1)
	g.set(func(g *fakeGPU) { g.nvCount[0][nvml.NVLINK_ERROR_DL_REPLAY] = 9 })
	wantRaise(t, f.next(s), ReasonNVLinkError, finding.Fatal, g.key())
}

func TestPCIeReplayRate(t *testing.T) {
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	g.set(func(g *fakeGPU) { g.replays = 1000 })
	s := f.healthyStart()
	// 8 per minute is the threshold, not above it.
	g.set(func(g *fakeGPU) { g.replays += 8 })
	healthyFor(t, f, s, 1)
	g.set(func(g *fakeGPU) { g.replays += 90 })
	r := wantRaise(t, f.next(s), ReasonPCIeError, finding.Warning, g.key())
	wantMessage(t, r, "detected 90 PCIe replays in 1m0s (90.0 per minute, threshold 8) on GPU 0000:10:00")
	// Still replaying: the same episode, no new event.
	g.set(func(g *fakeGPU) { g.replays += 90 })
	wantNothing(t, f.next(s))
	// Quiet for two polls ends the episode; the next burst is an event.
	healthyFor(t, f, s, 2)
	g.set(func(g *fakeGPU) { g.replays += 500 })
	wantRaise(t, f.next(s), ReasonPCIeError, finding.Warning, g.key())
}

func TestThermalAndPower(t *testing.T) {
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	s := f.healthyStart()

	g.set(func(g *fakeGPU) { g.clocks = clkSwThermal | clkHwSlowdown | clkHwThermal })
	rec := f.next(s)
	r := wantRaise(t, rec, ReasonThermalError, finding.Warning, g.key())
	if !strings.Contains(r.Message, "(sw_thermal, hw_thermal)") {
		t.Fatalf("message %q", r.Message)
	}
	wantNoRaise(t, rec, ReasonPowerError)
	// Unchanged: no new event.
	wantNothing(t, f.next(s))
	// A different cause is news.
	g.set(func(g *fakeGPU) { g.clocks = clkSwThermal })
	wantRaise(t, f.next(s), ReasonThermalError, finding.Warning, g.key())

	g.set(func(g *fakeGPU) { g.clocks = clkHwSlowdown | clkHwPowerBrake })
	rec = f.next(s)
	wantRaise(t, rec, ReasonPowerError, finding.Warning, g.key())
	// HW slowdown explained by the power brake is not also thermal.
	wantNoRaise(t, rec, ReasonThermalError)

	// HW slowdown alone is attributed to temperature.
	g.set(func(g *fakeGPU) { g.clocks = clkHwSlowdown })
	r = wantRaise(t, f.next(s), ReasonThermalError, finding.Warning, g.key())
	if !strings.Contains(r.Message, "hw_slowdown") {
		t.Fatalf("message %q", r.Message)
	}
}

func TestClockReasonsFallBackOnOldDrivers(t *testing.T) {
	f := newFakeNVML(t, 1)
	f.missing["nvmlDeviceGetCurrentClocksEventReasons"] = true
	f.gpus[0].set(func(g *fakeGPU) { g.clocks = clkHwPowerBrake })
	_, s := f.session(f.options())
	wantRaise(t, f.poll(s), ReasonPowerError, finding.Warning, f.gpus[0].key())
	if n := len(f.gpus[0].dev.GetCurrentClocksEventReasonsCalls()); n != 0 {
		t.Fatalf("called a function the driver lacks %d times", n)
	}

	// Neither entry point: not called, not a failure.
	f2 := newFakeNVML(t, 1)
	f2.missing["nvmlDeviceGetCurrentClocksEventReasons"] = true
	f2.missing["nvmlDeviceGetCurrentClocksThrottleReasons"] = true
	f2.missing["nvmlDeviceGetRemappedRows"] = true
	f2.missing["nvmlDeviceGetGpuFabricInfo"] = true
	f2.gpus[0].set(func(g *fakeGPU) { g.clocks = clkHwPowerBrake })
	o := f2.options()
	o.fabric = nil // the real reader: it must not call what is missing
	_, s2 := f2.session(o)
	wantNothing(t, f2.poll(s2))
	d := f2.gpus[0].dev
	if len(d.GetCurrentClocksThrottleReasonsCalls())+len(d.GetRemappedRowsCalls())+len(d.GetGpuFabricInfoCalls()) != 0 {
		t.Fatal("called functions the driver lacks")
	}
}

func TestFabricManager(t *testing.T) {
	f := newFakeNVML(t, 2)
	for _, g := range f.gpus {
		g.set(func(g *fakeGPU) { g.fabState = nvml.GPU_FABRIC_STATE_NOT_STARTED })
	}
	_, s := f.session(f.options())
	// Normal while the node boots: within the grace nothing is reported.
	wantNothing(t, f.poll(s))
	f.advance(9 * time.Minute)
	wantNothing(t, f.poll(s))
	r := wantRaise(t, f.next(s), ReasonFabricManager, finding.Fatal, "")
	if !strings.HasPrefix(r.Message, "Fabric Manager status: NotStarted on 2 of 2 GPUs (GPU 0000:10:00 NotStarted for 10m0s") {
		t.Fatalf("message %q", r.Message)
	}
	for _, g := range f.gpus {
		g.set(func(g *fakeGPU) { g.fabState, g.fabStat = nvml.GPU_FABRIC_STATE_COMPLETED, nvml.SUCCESS })
	}
	recovers(t, f, s, ReasonFabricManager, "")

	// A failed registration is reported at once.
	f.gpus[1].set(func(g *fakeGPU) { g.fabStat = nvml.ERROR_UNKNOWN })
	r = wantRaise(t, f.next(s), ReasonFabricManager, finding.Fatal, "")
	if !strings.HasPrefix(r.Message, "Fabric Manager status: Failure on 1 of 2 GPUs (GPU 0000:11:00 registration failed") {
		t.Fatalf("message %q", r.Message)
	}
}

func TestFabricNotSupportedIsQuiet(t *testing.T) {
	f := newFakeNVML(t, 1)
	f.gpus[0].set(func(g *fakeGPU) { g.fabRet = nvml.ERROR_NOT_SUPPORTED })
	_, s := f.session(f.options())
	healthyFor(t, f, s, 2)
}

func TestFabricHealthMaskDecode(t *testing.T) {
	for _, c := range []struct {
		mask uint32
		want string
	}{
		{0, ""},
		{0x80, ""}, // access_timeout_recovery = 2 (FALSE): healthy
		{0x10, "route_unhealthy=1"},
		{0x1, "degraded_bw=1"},
		{0x2, ""},
		{0x4, "route_recovery=1"},
		{0x40, "access_timeout_recovery=1"},
		{0x100, ""}, // incorrect_configuration = 1 (none)
		{0x200, "incorrect_configuration=2"},
		{0x800, "incorrect_configuration=8"},
		{0x1000, ""}, // partition bits: not a fault
		{0x4000, ""}, // GFM state: not a fault
		{0x1aa, ""},  // every field FALSE, configuration none
		{0x2aa, "incorrect_configuration=2"},
		{0x311, "degraded_bw=1, route_unhealthy=1, incorrect_configuration=3"},
	} {
		got := strings.Join(fabricFaults(c.mask), ", ")
		if got != c.want {
			t.Errorf("mask 0x%x: faults %q, want %q", c.mask, got, c.want)
		}
	}
}

func TestFabricHealthMaskFinding(t *testing.T) {
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	g.set(func(g *fakeGPU) {
		g.fabState, g.fabStat, g.fabMask = nvml.GPU_FABRIC_STATE_COMPLETED, nvml.SUCCESS, 0x80
	})
	s := f.healthyStart()
	g.set(func(g *fakeGPU) { g.fabMask = 0x90 })
	r := wantRaise(t, f.next(s), ReasonFabricError, finding.Fatal, g.key())
	wantMessage(t, r, "GPU fabric health mask 0x90: route_unhealthy=1 on GPU 0000:10:00")
	g.set(func(g *fakeGPU) { g.fabMask = 0x80 })
	recovers(t, f, s, ReasonFabricError, g.key())
}

func TestDeviceCountFiles(t *testing.T) {
	f := newFakeNVML(t, 8)
	s := f.healthyStart()
	f.setDeviceFiles(7)
	// One poll is not enough: device files can lag the driver.
	r := wantConfirmedRaise(t, f, s, ReasonDeviceCountMismatch, finding.Fatal, countKeyFiles)
	wantMessage(t, r, "NVML detected 8 GPUs but 7 nvidia device files were detected")
	f.setDeviceFiles(8)
	recovers(t, f, s, ReasonDeviceCountMismatch, countKeyFiles)
}

func TestDeviceCountInstanceType(t *testing.T) {
	f := newFakeNVML(t, 7)
	f.itype = "p5.48xlarge" // which has 8
	s := f.healthyStart()
	r := wantRaise(t, f.next(s), ReasonDeviceCountMismatch, finding.Fatal, countKeyInstanceType)
	wantMessage(t, r, "expected 8 GPUs for this instance type (p5.48xlarge) but only 7 were detected — possible hardware failure")
	// Unknown instance types are not judged.
	f.mu.Lock()
	f.itype = "x9.weird"
	f.mu.Unlock()
	recovers(t, f, s, ReasonDeviceCountMismatch, countKeyInstanceType)
}

func TestDeviceCountLostGPU(t *testing.T) {
	f := newFakeNVML(t, 2)
	s := f.healthyStart()
	// The GPU fell off the bus: every read says so.
	f.gpus[1].set(func(g *fakeGPU) { g.eccRet, g.pcieRet = nvml.ERROR_GPU_IS_LOST, nvml.ERROR_GPU_IS_LOST })
	f.next(s)
	r := wantRaise(t, f.next(s), ReasonDeviceCountMismatch, finding.Fatal, countKeyFiles)
	wantMessage(t, r, "NVML detected 1 usable GPUs (1 lost: index 1) but 2 nvidia device files were detected")
}

func TestDeviceCountWithoutIMDS(t *testing.T) {
	f := newFakeNVML(t, 1)
	f.mu.Lock()
	f.itype, f.itErr = "", errIMDSTest
	f.mu.Unlock()
	_, s := f.session(f.options())
	for i := 0; i < 3; i++ {
		rec := f.next(s)
		wantNothing(t, rec)
		// The count check did not fully run, so left-overs of an earlier
		// run must not be swept.
		if c := clearsOf(rec.clears(), ReasonDeviceCountMismatch); len(c) != 0 {
			t.Fatalf("swept without the instance-type check: %+v", c)
		}
	}
}

func TestSweepClearsLeftoversOfAnEarlierRun(t *testing.T) {
	f := newFakeNVML(t, 2)
	s := f.healthyStart()
	rec := f.next(s)
	got := map[string]bool{}
	for _, c := range rec.clears() {
		if !c.AllKeys || c.Condition != finding.AcceleratedHardwareReady {
			t.Fatalf("unexpected clear %+v", c)
		}
		got[c.Reason] = true
	}
	for _, r := range sweepable {
		if !got[r] {
			t.Errorf("%s not swept after two healthy polls (clears: %+v)", r, rec.clears())
		}
	}
	// Once per run.
	if c := f.next(s).clears(); len(c) != 0 {
		t.Fatalf("swept twice: %+v", c)
	}
}

func TestNoSweepWhileAGPUCannotBeRead(t *testing.T) {
	f := newFakeNVML(t, 2)
	_, s := f.session(f.options())
	f.gpus[0].set(func(g *fakeGPU) { g.eccRet = nvml.ERROR_UNKNOWN })
	for i := 0; i < 3; i++ {
		if c := clearsOf(f.next(s).clears(), ReasonDoubleBitError); len(c) != 0 {
			t.Fatalf("swept DBE findings while a GPU's ECC could not be read: %+v", c)
		}
	}
}

func TestUnreadableGPUDoesNotClear(t *testing.T) {
	f := newFakeNVML(t, 1)
	g := f.gpus[0]
	g.set(func(g *fakeGPU) { g.dbe = 1 })
	_, s := f.session(f.options())
	wantRaise(t, f.poll(s), ReasonDoubleBitError, finding.Fatal, g.key())
	g.set(func(g *fakeGPU) { g.dbe, g.eccRet = 0, nvml.ERROR_UNKNOWN })
	for i := 0; i < 3; i++ {
		if c := clearsOf(f.next(s).clears(), ReasonDoubleBitError); len(c) != 0 {
			t.Fatalf("cleared on a failed read: %+v", c)
		}
	}
}
