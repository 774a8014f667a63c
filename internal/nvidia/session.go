package nvidia

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/nodehealthd/nodehealthd/internal/detector"
)

// gpu is one GPU NVML enumerated.
type gpu struct {
	index int
	dev   nvml.Device
	// key is the PCI address as the kernel prints it in XID lines.
	key        string
	name, uuid string
}

// session is one initialised NVML: the GPUs, the XID event set and what
// the checks remember between polls.
type session struct {
	d      *Detector
	has    symbols
	gpus   []gpu
	lost   []int // indices NVML counts but cannot reach
	driver string
	events nvml.EventSet
	tr     *tracker
	states map[string]*devState
	// xids are each GPU's latest NVML XID events, for the status. A slice
	// once stored is never changed: the board shares it.
	xids map[string][]XIDEvent
}

// devReasons are judged per GPU; a GPU that cannot be read leaves them
// unchecked for the poll.
var devReasons = []string{ReasonDoubleBitError, ReasonPageRetirement, ReasonNVLinkError, ReasonPCIeError, ReasonThermalError, ReasonPowerError, ReasonFabricError, ReasonInfoROM}

// open enumerates the GPUs and registers for XID events.
func (d *Detector) open(ctx context.Context) (*session, error) {
	s := &session{d: d, tr: newTracker(d.o.Passes), states: map[string]*devState{}, xids: map[string][]XIDEvent{}}
	var (
		n   int
		ret nvml.Return
		ext nvml.ExtendedInterface
	)
	if err := d.call(ctx, "nvmlDeviceGetCount", d.o.CallTimeout, func() {
		n, ret = d.o.Lib.DeviceGetCount()
		s.driver, _ = d.o.Lib.SystemGetDriverVersion()
		ext = d.o.Lib.Extensions()
	}); err != nil {
		return nil, err
	}
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvmlDeviceGetCount: %v", ret)
	}
	// Looked up on the worker only (inside sampleDevice), so the cache
	// needs no lock.
	cache := map[string]bool{}
	s.has = func(name string) bool {
		v, ok := cache[name]
		if !ok {
			v = ext != nil && ext.LookupSymbol(name) == nil
			cache[name] = v
		}
		return v
	}
	for i := 0; i < n; i++ {
		g := gpu{index: i}
		ret := nvml.ERROR_UNKNOWN
		if err := d.call(ctx, "nvmlDeviceGetHandleByIndex", d.o.CallTimeout, func() {
			g.dev, ret = d.o.Lib.DeviceGetHandleByIndex(i)
			if ret != nvml.SUCCESS {
				return
			}
			if info, r := g.dev.GetPciInfo(); r == nvml.SUCCESS {
				g.key = PCIKey(info)
			}
			g.name, _ = g.dev.GetName()
			g.uuid, _ = g.dev.GetUUID()
		}); err != nil {
			return nil, err
		}
		if ret != nvml.SUCCESS {
			d.o.Log.Error("NVML cannot reach a GPU", "index", i, "err", ret)
			s.lost = append(s.lost, i)
			continue
		}
		if g.key == "" {
			// Findings need a stable key; XIDs for it will not merge with
			// kmsg's, which is the lesser evil.
			g.key = fmt.Sprintf("gpu%d", i)
		}
		s.gpus = append(s.gpus, g)
	}
	if err := s.register(ctx); err != nil {
		return nil, err
	}
	d.o.Status.working(s.driver, n, s.events != nil)
	d.o.Log.Info("NVML monitoring GPUs", "gpus", n, "unreachable", len(s.lost), "driver", s.driver, "xid_events", s.events != nil)
	return s, nil
}

// register asks for XID events on every GPU that supports them. Without
// them XIDs still arrive through kmsg, so a failure is only logged.
func (s *session) register(ctx context.Context) error {
	d := s.d
	var (
		set        nvml.EventSet
		ret        nvml.Return
		registered int
		failures   []string
	)
	err := d.call(ctx, "nvmlEventSetCreate", d.o.CallTimeout, func() {
		set, ret = d.o.Lib.EventSetCreate()
		if ret != nvml.SUCCESS {
			return
		}
		for _, g := range s.gpus {
			switch r := g.dev.RegisterEvents(nvml.EventTypeXidCriticalError, set); r {
			case nvml.SUCCESS:
				registered++
			default:
				failures = append(failures, fmt.Sprintf("%s: %v", g.key, r))
			}
		}
	})
	if err != nil {
		return err
	}
	if ret != nvml.SUCCESS {
		d.o.Log.Warn("cannot create an NVML event set; XIDs come from kmsg only", "err", ret)
		return nil
	}
	if len(failures) > 0 {
		d.o.Log.Warn("some GPUs do not deliver XID events through NVML; their XIDs come from kmsg only", "gpus", failures)
	}
	if registered == 0 {
		_ = d.call(ctx, "nvmlEventSetFree", d.o.CallTimeout, func() { set.Free() })
		return nil
	}
	s.events = set
	return nil
}

// loop polls the counters every Interval and waits for XID events in
// between.
func (s *session) loop(ctx context.Context, emit detector.Emitter) error {
	d := s.d
	next := time.Now()
	for {
		if ctx.Err() != nil {
			return nil
		}
		if !time.Now().Before(next) {
			if err := s.poll(ctx, emit); err != nil {
				return s.stop(ctx, emit, err)
			}
			next = time.Now().Add(d.o.Interval)
		}
		wait := max(min(time.Until(next), d.o.EventWait), 10*time.Millisecond)
		if s.events == nil {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			continue
		}
		if err := s.waitEvent(ctx, emit, wait); err != nil {
			return s.stop(ctx, emit, err)
		}
	}
}

// stop ends the session after an NVML failure; a cancelled context is the
// normal end.
func (s *session) stop(ctx context.Context, emit detector.Emitter, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return s.d.failure(emit, err)
}

// waitEvent waits up to wait for one event and handles it.
func (s *session) waitEvent(ctx context.Context, emit detector.Emitter, wait time.Duration) error {
	d := s.d
	var (
		ev  nvml.EventData
		ret nvml.Return
	)
	if err := d.call(ctx, "nvmlEventSetWait", wait+d.o.CallTimeout, func() {
		ev, ret = s.events.Wait(uint32(wait.Milliseconds()))
	}); err != nil {
		return err
	}
	switch ret {
	case nvml.SUCCESS:
		return s.xid(ctx, ev, emit)
	case nvml.ERROR_TIMEOUT:
		return nil
	default:
		// ERROR_GPU_IS_LOST and the like: the poll reports the GPU; do
		// not spin on an event set that fails at once.
		d.o.Log.Debug("NVML event wait failed", "err", ret)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		return nil
	}
}

// xid reports an XID event for the kmsg XID rules to instantiate.
func (s *session) xid(ctx context.Context, ev nvml.EventData, emit detector.Emitter) error {
	if ev.EventType&nvml.EventTypeXidCriticalError == 0 {
		return nil
	}
	key := ""
	if ev.Device != nil {
		if err := s.d.call(ctx, "nvmlDeviceGetPciInfo", s.d.o.CallTimeout, func() {
			if info, r := ev.Device.GetPciInfo(); r == nvml.SUCCESS {
				key = PCIKey(info)
			}
		}); err != nil && errors.Is(err, ErrHung) {
			return err
		}
	}
	if key == "" && len(s.gpus) == 1 {
		key = s.gpus[0].key
	}
	if key == "" {
		key = "unknown"
	}
	s.d.o.Log.Info("NVML reported an XID", "xid", ev.EventData, "gpu", key)
	now := s.d.o.Now()
	xids := append(slices.Clone(s.xids[key]), XIDEvent{XID: ev.EventData, At: now})
	xids = xids[max(0, len(xids)-maxXIDs):]
	s.xids[key] = xids
	s.d.o.Status.noteXID(key, xids)
	emit.Observe(xidEvent(ev.EventData, key, now))
	return nil
}

// poll reads every GPU once and applies the results. It returns an error
// only when NVML hung.
func (s *session) poll(ctx context.Context, emit detector.Emitter) error {
	d := s.d
	now := d.o.Now()
	cov := newCoverage()
	for _, r := range devReasons {
		// A GPU that NVML cannot reach is not a GPU that passed.
		cov.reasons[r] = len(s.lost) == 0
	}
	lost := append([]int(nil), s.lost...)
	var results []result
	var fabric []gpuFabric
	var statuses []GPUStatus
	for _, i := range s.lost {
		statuses = append(statuses, GPUStatus{Index: i, Lost: true, ReadError: "NVML cannot reach the GPU (no handle)"})
	}
	for _, g := range s.gpus {
		var smp sample
		if err := d.call(ctx, "read GPU "+g.key, d.o.CallTimeout, func() { smp = sampleDevice(g.dev, s.has, d.o.fabric) }); err != nil {
			if errors.Is(err, ErrHung) || ctx.Err() != nil {
				return err
			}
			d.o.Log.Error("cannot read GPU", "gpu", g.key, "err", err)
			for _, r := range devReasons {
				cov.reasons[r] = false
			}
			statuses = append(statuses, GPUStatus{Index: g.index, PCI: g.key, Name: g.name, UUID: g.uuid, XIDs: s.xids[g.key], ReadError: err.Error()})
			continue
		}
		statuses = append(statuses, gpuStatus(g, smp, s.xids[g.key]))
		if smp.ecc.ret == nvml.ERROR_GPU_IS_LOST || smp.pcie.ret == nvml.ERROR_GPU_IS_LOST {
			lost = append(lost, g.index)
		}
		st := s.states[g.key]
		if st == nil {
			st = newDevState()
			s.states[g.key] = st
		}
		results = append(results, evalDevice(g.key, st, smp, now, d.o.Limits, cov)...)
		fabric = append(fabric, gpuFabric{key: g.key, st: st, s: smp.fabric})
	}
	results = append(results, evalFabricManager(fabric, now, d.o.Limits, cov)...)
	results = append(results, evalCount(ctx, d.o.Root, gpuCount{nvml: len(s.gpus) + len(s.lost), lost: lost}, d.o.InstanceType, cov)...)
	s.tr.apply(now, results, cov, emit)
	slices.SortFunc(statuses, func(a, b GPUStatus) int { return a.Index - b.Index })
	d.o.Status.setGPUs(now, statuses)
	return nil
}
