package nvidia

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// ErrNoLibrary is returned by SelfCheck when libnvidia-ml cannot be loaded.
var ErrNoLibrary = errors.New("libnvidia-ml.so.1 cannot be loaded: no NVIDIA driver on this host (or pass its path)")

// CheckOptions configure SelfCheck.
type CheckOptions struct {
	Lib  nvml.Interface
	Root string
	Out  io.Writer
	// Wait listens for XID events this long after the reads (0: not at all).
	Wait         time.Duration
	InstanceType func(context.Context) (string, error)
	Timeout      time.Duration
	// fabric replaces the fabric read in tests.
	fabric fabricReader
}

// SelfCheck runs the detector's real NVML path once and prints what it
// sees: driver, GPUs, XID event registration, every counter read with its
// return code, and the findings a first poll would raise. It is for
// checking a GPU machine by hand (cmd nvmlcheck); it returns an error when
// NVML cannot be used or a read failed.
func SelfCheck(ctx context.Context, o CheckOptions) error {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	w := o.Out
	caller := NewCaller(nil)
	call := func(op string, f func()) error { return caller.Do(ctx, op, o.Timeout, f) }
	var ret nvml.Return
	if err := call("nvmlInit", func() { ret = o.Lib.Init() }); err != nil {
		return err
	}
	switch ret {
	case nvml.SUCCESS:
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return ErrNoLibrary
	default:
		return initError(ret)
	}
	defer func() { _ = call("nvmlShutdown", func() { o.Lib.Shutdown() }) }()

	rec := &collector{}
	policy, _ := LoadXIDPolicy(nil, "")
	d := New(Options{Lib: o.Lib, Caller: caller, Status: &StatusBoard{}, Root: o.Root, Log: slog.New(slog.DiscardHandler),
		InstanceType: o.InstanceType, CallTimeout: o.Timeout, fabric: o.fabric, XID: policy})
	s, err := d.open(ctx)
	if err != nil {
		return fmt.Errorf("enumerating GPUs: %w", err)
	}
	defer func() {
		if s.events != nil {
			_ = call("nvmlEventSetFree", func() { s.events.Free() })
		}
	}()
	var nvmlVersion string
	_ = call("nvmlSystemGetNVMLVersion", func() { nvmlVersion, _ = o.Lib.SystemGetNVMLVersion() })
	fmt.Fprintf(w, "driver %s, NVML %s\n", s.driver, nvmlVersion)
	fmt.Fprintf(w, "GPUs: %d usable, %d unreachable\n", len(s.gpus), len(s.lost))
	files, ferr := DeviceFiles(o.Root)
	fmt.Fprintf(w, "device files %s/dev/nvidia<N>: %d (err %v)\n", o.Root, files, ferr)
	if o.InstanceType != nil {
		it, err := o.InstanceType(ctx)
		want, known := ExpectedGPUs(it)
		fmt.Fprintf(w, "instance type: %q (err %v); expected GPUs: %d (known %v)\n", it, err, want, known)
	}
	fmt.Fprintf(w, "XID events through NVML: %v\n", s.events != nil)

	failed := 0
	show := func(what string, ret nvml.Return, value any) {
		mark := "ok"
		if !fine(ret) {
			mark = "FAILED"
			failed++
		}
		fmt.Fprintf(w, "  %-34s %-26v %v  [%s]\n", what, ret, value, mark)
	}
	for _, g := range s.gpus {
		fmt.Fprintf(w, "GPU %d %s %s %s\n", g.index, g.key, g.name, g.uuid)
		var smp sample
		if err := call("read GPU "+g.key, func() { smp = sampleDevice(g.dev, s.has, d.o.fabric) }); err != nil {
			return err
		}
		show("ECC uncorrected (volatile)", smp.ecc.ret, smp.ecc.total)
		show("retired pages (multiple SBE)", smp.pages.sbeRet, smp.pages.sbe)
		show("retired pages (DBE)", smp.pages.dbeRet, smp.pages.dbe)
		show("retired pages pending", smp.pages.pendingRet, smp.pages.pending)
		show("remapped rows corr/unc/pend/fail", smp.remap.ret, fmt.Sprint(smp.remap.corr, "/", smp.remap.unc, "/", smp.remap.pending, "/", smp.remap.failed))
		show("NVLink links read", smp.nvlink.ret, len(smp.nvlink.links))
		show("PCIe replay counter", smp.pcie.ret, smp.pcie.replays)
		show("clock event reasons", smp.clocks.ret, fmt.Sprintf("0x%x", smp.clocks.reasons))
		show("fabric state/status/mask", smp.fabric.ret, fmt.Sprintf("%s mask=0x%x (mask read %v)", fabricStatusName(smp.fabric.state, smp.fabric.status), smp.fabric.mask, smp.fabric.hasMask))
	}
	// Two polls: the second judges the rates and baselines of the first.
	for i := 0; i < 2; i++ {
		if err := s.poll(ctx, rec); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "findings of two polls: %d\n", len(rec.raised()))
	for _, f := range rec.raised() {
		fmt.Fprintf(w, "  %s %s [%s] %s\n", f.Severity, f.Reason, f.Key, f.Message)
	}
	if o.Wait > 0 && s.events != nil {
		fmt.Fprintf(w, "waiting %s for XID events…\n", o.Wait)
		end := time.Now().Add(o.Wait)
		before := len(rec.raised())
		for time.Now().Before(end) && ctx.Err() == nil {
			if err := s.waitEvent(ctx, rec, min(time.Until(end), 2*time.Second)); err != nil {
				return err
			}
		}
		for _, f := range rec.raised()[before:] {
			fmt.Fprintf(w, "  XID: %s %s [%s]\n", f.Severity, f.Reason, f.Key)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d NVML reads failed", failed)
	}
	return nil
}

// collector is an Emitter that keeps what it is given.
type collector struct {
	mu      sync.Mutex
	raises  []finding.Finding
	cleared []finding.Clear
}

func (c *collector) Raise(f finding.Finding) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.raises = append(c.raises, f)
}

func (c *collector) Clear(cl finding.Clear) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleared = append(c.cleared, cl)
}

func (c *collector) raised() []finding.Finding {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]finding.Finding(nil), c.raises...)
}

func (c *collector) clears() []finding.Clear {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]finding.Clear(nil), c.cleared...)
}
