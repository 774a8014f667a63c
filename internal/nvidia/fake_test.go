package nvidia

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// fakeGPU is one GPU's readings, served through go-nvml's generated mock.
// Every field starts healthy; tests change them between polls.
type fakeGPU struct {
	mu       sync.Mutex
	bus      uint32
	dbe      uint64
	dbeLoc   map[nvml.MemoryLocation]uint64
	eccRet   nvml.Return
	sbePages int
	dbePages int
	pending  bool
	pagesRet nvml.Return
	remap    [4]int // corr, unc, pending(0/1), failed(0/1)
	remapRet nvml.Return
	links    []bool // per link: active
	nvCount  map[int]map[nvml.NvLinkErrorCounter]uint64
	replays  int
	pcieRet  nvml.Return
	clocks   uint64
	clockRet nvml.Return
	fabState uint8
	fabStat  nvml.Return
	fabMask  uint32
	fabRet   nvml.Return
	fabSum   uint8 // health summary; 0 = not read (as from a v1/v2 driver)
	// width, maxWidth, gen, maxGen: the PCIe link.
	width, maxWidth, gen, maxGen int
	linkRet                      nvml.Return
	pstate                       nvml.Pstates
	pstateRet                    nvml.Return
	temp                         uint32
	tempRet                      nvml.Return
	inforomRet                   nvml.Return
	// block, when set, makes the ECC read wait until it is closed: a
	// driver call that hangs.
	block chan struct{}
	dev   *mock.Device
}

func newFakeGPU(bus uint32) *fakeGPU {
	g := &fakeGPU{bus: bus, pagesRet: nvml.ERROR_NOT_SUPPORTED, fabState: nvml.GPU_FABRIC_STATE_NOT_SUPPORTED,
		links: []bool{true, true}, nvCount: map[int]map[nvml.NvLinkErrorCounter]uint64{},
		width: 16, maxWidth: 16, gen: 5, maxGen: 5, pstate: nvml.PSTATE_0, temp: 41}
	clocks := under(g, func() (uint64, nvml.Return) { return g.clocks, g.clockRet })
	g.dev = &mock.Device{
		GetPciInfoFunc: func() (nvml.PciInfo, nvml.Return) {
			return nvml.PciInfo{Domain: 0, Bus: g.bus, Device: 0}, nvml.SUCCESS
		},
		GetNameFunc: func() (string, nvml.Return) { return "NVIDIA H100 80GB HBM3", nvml.SUCCESS },
		GetUUIDFunc: func() (string, nvml.Return) { return fmt.Sprintf("GPU-%08x", g.bus), nvml.SUCCESS },
		GetTotalEccErrorsFunc: func(t nvml.MemoryErrorType, c nvml.EccCounterType) (uint64, nvml.Return) {
			g.mu.Lock()
			block := g.block
			g.mu.Unlock()
			if block != nil {
				<-block
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			if t != nvml.MEMORY_ERROR_TYPE_UNCORRECTED || c != nvml.VOLATILE_ECC {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			return g.dbe, g.eccRet
		},
		GetMemoryErrorCounterFunc: func(t nvml.MemoryErrorType, c nvml.EccCounterType, l nvml.MemoryLocation) (uint64, nvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.dbeLoc[l], nvml.SUCCESS
		},
		GetRetiredPagesFunc: func(c nvml.PageRetirementCause) ([]uint64, nvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			n := g.sbePages
			if c == nvml.PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR {
				n = g.dbePages
			}
			return make([]uint64, n), g.pagesRet
		},
		GetRetiredPagesPendingStatusFunc: under(g, func() (nvml.EnableState, nvml.Return) {
			if g.pending {
				return nvml.FEATURE_ENABLED, g.pagesRet
			}
			return nvml.FEATURE_DISABLED, g.pagesRet
		}),
		GetRemappedRowsFunc: func() (int, int, bool, bool, nvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.remap[0], g.remap[1], g.remap[2] == 1, g.remap[3] == 1, g.remapRet
		},
		GetNvLinkStateFunc: func(l int) (nvml.EnableState, nvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			if len(g.links) == 0 {
				return 0, nvml.ERROR_NOT_SUPPORTED
			}
			if l >= len(g.links) {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			if g.links[l] {
				return nvml.FEATURE_ENABLED, nvml.SUCCESS
			}
			return nvml.FEATURE_DISABLED, nvml.SUCCESS
		},
		GetNvLinkErrorCounterFunc: func(l int, c nvml.NvLinkErrorCounter) (uint64, nvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.nvCount[l][c], nvml.SUCCESS
		},
		GetPcieReplayCounterFunc: under(g, func() (int, nvml.Return) { return g.replays, g.pcieRet }),
		// Both entry points read the same reasons; drivers have one or both.
		GetCurrentClocksEventReasonsFunc:    clocks,
		GetCurrentClocksThrottleReasonsFunc: clocks,
		GetCurrPcieLinkWidthFunc:            under(g, func() (int, nvml.Return) { return g.width, g.linkRet }),
		GetMaxPcieLinkWidthFunc:             under(g, func() (int, nvml.Return) { return g.maxWidth, g.linkRet }),
		GetCurrPcieLinkGenerationFunc:       under(g, func() (int, nvml.Return) { return g.gen, g.linkRet }),
		GetMaxPcieLinkGenerationFunc:        under(g, func() (int, nvml.Return) { return g.maxGen, g.linkRet }),
		GetPerformanceStateFunc:             under(g, func() (nvml.Pstates, nvml.Return) { return g.pstate, g.pstateRet }),
		GetTemperatureFunc: func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			if s != nvml.TEMPERATURE_GPU {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			return g.temp, g.tempRet
		},
		ValidateInforomFunc: func() nvml.Return {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.inforomRet
		},
		GetGpuFabricInfoFunc: under(g, func() (nvml.GpuFabricInfo, nvml.Return) {
			return nvml.GpuFabricInfo{State: g.fabState, Status: uint32(g.fabStat)}, g.fabRet
		}),
		RegisterEventsFunc: func(types uint64, set nvml.EventSet) nvml.Return { return nvml.SUCCESS },
	}
	return g
}

// under makes a mock getter that reads the GPU's fields under its lock,
// since tests change them while the detector's worker reads them.
func under[T any](g *fakeGPU, read func() (T, nvml.Return)) func() (T, nvml.Return) {
	return func() (T, nvml.Return) {
		g.mu.Lock()
		defer g.mu.Unlock()
		return read()
	}
}

func (g *fakeGPU) set(f func(g *fakeGPU)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

func (g *fakeGPU) key() string { return fmt.Sprintf("0000:%02x:00", g.bus) }

// testFabric reads state and status through the mock (fabricV1, the real
// code) and adds the health mask and summary, which go-nvml's versioned
// call cannot deliver from a mock.
func testFabric(gpus []*fakeGPU) fabricReader {
	return func(dev nvml.Device, has symbols) fabricSample {
		s := readFabric(dev, has)
		for _, g := range gpus {
			if nvml.Device(g.dev) == dev {
				g.mu.Lock()
				s.mask, s.hasMask = g.fabMask, s.ret == nvml.SUCCESS
				s.summary, s.hasSummary = g.fabSum, s.ret == nvml.SUCCESS && g.fabSum != 0
				g.mu.Unlock()
			}
		}
		return s
	}
}

// fakeNVML is a machine: its GPUs, device files, instance type, event
// queue and a controllable clock.
type fakeNVML struct {
	t       *testing.T
	gpus    []*fakeGPU
	lib     *mock.Interface
	root    string
	events  chan nvml.EventData
	missing map[string]bool // symbols the "driver" lacks

	mu       sync.Mutex
	initRets []nvml.Return // returned by successive Init calls; SUCCESS after
	inits    int
	shutdown int
	now      time.Time
	itype    string
	itErr    error
}

func newFakeNVML(t *testing.T, n int) *fakeNVML {
	t.Helper()
	// The versioned fabric call needs a real device handle, so the fake
	// "driver" lacks it and the real reader falls back to the mockable one.
	f := &fakeNVML{t: t, root: t.TempDir(), events: make(chan nvml.EventData, 16), missing: map[string]bool{"nvmlDeviceGetGpuFabricInfoV": true},
		now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), itype: "x1.unknown"}
	for i := 0; i < n; i++ {
		f.gpus = append(f.gpus, newFakeGPU(uint32(0x10+i)))
	}
	f.setDeviceFiles(n)
	ext := &mock.ExtendedInterface{LookupSymbolFunc: func(name string) error {
		if f.missing[name] {
			return errors.New("undefined symbol")
		}
		return nil
	}}
	f.lib = &mock.Interface{
		InitFunc: func() nvml.Return {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.inits++
			if len(f.initRets) > 0 {
				r := f.initRets[0]
				f.initRets = f.initRets[1:]
				return r
			}
			return nvml.SUCCESS
		},
		ShutdownFunc: func() nvml.Return {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.shutdown++
			return nvml.SUCCESS
		},
		DeviceGetCountFunc:         func() (int, nvml.Return) { return len(f.gpus), nvml.SUCCESS },
		SystemGetDriverVersionFunc: func() (string, nvml.Return) { return "570.172.08", nvml.SUCCESS },
		SystemGetNVMLVersionFunc:   func() (string, nvml.Return) { return "12.570.172.08", nvml.SUCCESS },
		ExtensionsFunc:             func() nvml.ExtendedInterface { return ext },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if i < 0 || i >= len(f.gpus) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return f.gpus[i].dev, nvml.SUCCESS
		},
		EventSetCreateFunc: func() (nvml.EventSet, nvml.Return) {
			return &mock.EventSet{
				WaitFunc: func(ms uint32) (nvml.EventData, nvml.Return) {
					select {
					case ev := <-f.events:
						return ev, nvml.SUCCESS
					case <-time.After(time.Duration(ms) * time.Millisecond):
						return nvml.EventData{}, nvml.ERROR_TIMEOUT
					}
				},
				FreeFunc: func() nvml.Return { return nvml.SUCCESS },
			}, nvml.SUCCESS
		},
	}
	return f
}

func (f *fakeNVML) setDeviceFiles(n int) {
	f.t.Helper()
	dev := filepath.Join(f.root, "dev")
	os.RemoveAll(dev)
	if err := os.MkdirAll(dev, 0o755); err != nil {
		f.t.Fatal(err)
	}
	for _, name := range []string{"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"} {
		os.WriteFile(filepath.Join(dev, name), nil, 0o644)
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(dev, fmt.Sprintf("nvidia%d", i)), nil, 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fakeNVML) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeNVML) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func (f *fakeNVML) instanceType(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.itype, f.itErr
}

func (f *fakeNVML) options() Options {
	return Options{
		Lib: f.lib, Root: f.root, Log: testLogger(f.t), Now: f.clock, Status: &StatusBoard{},
		InstanceType: f.instanceType, fabric: testFabric(f.gpus),
		CallTimeout: 2 * time.Second, EventWait: 20 * time.Millisecond,
		InitBackoff: 5 * time.Millisecond, MaxInitBackoff: 20 * time.Millisecond,
	}
}

// session opens an initialised session the way Run does.
func (f *fakeNVML) session(o Options) (*Detector, *session) {
	f.t.Helper()
	d := New(o)
	s, err := d.open(context.Background())
	if err != nil {
		f.t.Fatalf("open: %v", err)
	}
	return d, s
}

// healthyStart opens a session and asserts that its first poll, which
// takes the baselines, raised nothing.
func (f *fakeNVML) healthyStart() *session {
	f.t.Helper()
	_, s := f.session(f.options())
	wantNothing(f.t, f.poll(s))
	return s
}

// poll runs one poll at the fake time and returns what it emitted.
func (f *fakeNVML) poll(s *session) *collector {
	f.t.Helper()
	rec := &collector{}
	if err := s.poll(context.Background(), rec); err != nil {
		f.t.Fatalf("poll: %v", err)
	}
	return rec
}

// next polls a poll period (the default minute) after the last poll.
func (f *fakeNVML) next(s *session) *collector {
	f.t.Helper()
	f.advance(time.Minute)
	return f.poll(s)
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// only returns the raises of one reason.
func only(fs []finding.Finding, reason string) []finding.Finding {
	return slices.DeleteFunc(slices.Clone(fs), func(f finding.Finding) bool { return f.Reason != reason })
}

// clearsOf returns the clears of one reason.
func clearsOf(cs []finding.Clear, reason string) []finding.Clear {
	return slices.DeleteFunc(slices.Clone(cs), func(c finding.Clear) bool { return c.Reason != reason })
}

// wantRaise asserts exactly one raise of reason with this severity and key
// and returns it.
func wantRaise(t *testing.T, rec *collector, reason string, sev finding.Severity, key string) finding.Finding {
	t.Helper()
	got := only(rec.raised(), reason)
	if len(got) != 1 {
		t.Fatalf("want one %s raise, got %d: %+v (all: %+v)", reason, len(got), got, rec.raised())
	}
	f := got[0]
	if f.Severity != sev || f.Key != key || f.Condition != finding.AcceleratedHardwareReady || f.Source != Source {
		t.Fatalf("%s: got %+v, want severity %s key %q", reason, f, sev, key)
	}
	if sev == finding.Fatal && !f.Recovery.Probe {
		t.Fatalf("%s: a polled Fatal finding must be probe-recoverable: %+v", reason, f.Recovery)
	}
	wantDescribed(t, f)
	return f
}

func wantMessage(t *testing.T, f finding.Finding, want string) {
	t.Helper()
	if f.Message != want {
		t.Fatalf("message %q, want %q", f.Message, want)
	}
}

func wantNoRaise(t *testing.T, rec *collector, reason string) {
	t.Helper()
	if got := only(rec.raised(), reason); len(got) != 0 {
		t.Fatalf("want no %s raise, got %+v", reason, got)
	}
}

// wantNothing asserts a poll raised nothing at all.
func wantNothing(t *testing.T, rec *collector) {
	t.Helper()
	if got := rec.raised(); len(got) != 0 {
		t.Fatalf("want no raise, got %+v", got)
	}
}

var errIMDSTest = errors.New("no IMDS here")
