package nvidia

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/rules"
)

// ErrNoLibrary is returned by SelfCheck when libnvidia-ml cannot be loaded.
var ErrNoLibrary = errors.New("libnvidia-ml.so.1 cannot be loaded: no NVIDIA driver on this host (or pass its path)")

// ErrUnhealthy is wrapped by SelfCheck's error when a check raised a
// finding, and ErrUnread when an NVML read failed (a check that could not
// run).
var (
	ErrUnhealthy = errors.New("a GPU check failed")
	ErrUnread    = errors.New("NVML reads failed")
)

// CheckOptions configure SelfCheck.
type CheckOptions struct {
	Lib  nvml.Interface
	Root string
	Out  io.Writer
	// JSON writes only the per-GPU report, as JSON (Report).
	JSON bool
	// Wait listens for XID events this long after the reads (0: not at all).
	Wait         time.Duration
	InstanceType func(context.Context) (string, error)
	Timeout      time.Duration
	// fabric replaces the fabric read in tests.
	fabric fabricReader
}

// SelfCheck runs the detector's real NVML path once and prints what it
// sees: driver, GPUs, XID event registration, every read with its NVML
// return code, then the per-GPU report of two polls (as nodehealthctl gpu
// shows the daemon's) with the findings they raised. It is for checking a
// GPU machine by hand (cmd nvmlcheck, scripts/gpu-check.sh). It returns an
// error when NVML cannot be used (ErrNoLibrary, or the failure), and one
// wrapping ErrUnhealthy and/or ErrUnread when a check found a problem or a
// read failed.
func SelfCheck(ctx context.Context, o CheckOptions) error {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	w := o.Out
	if o.JSON {
		w = io.Discard
	}
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
	board := &StatusBoard{}
	board.SetEnabled(true)
	d := New(Options{Lib: o.Lib, Caller: caller, Status: board, Root: o.Root, Log: slog.New(slog.DiscardHandler),
		InstanceType: o.InstanceType, CallTimeout: o.Timeout, fabric: o.fabric,
		// A check run by hand on a booted machine: a fabric that is not
		// up by now is a failure, not a node still starting.
		Limits: Limits{FabricStartGrace: time.Nanosecond}})
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
		show("PCIe link width current/max", smp.link.widthRet, fmt.Sprintf("x%d/x%d", smp.link.width, smp.link.maxWidth))
		show("PCIe link gen current/max", smp.link.genRet, fmt.Sprintf("%d/%d", smp.link.gen, smp.link.maxGen))
		show("performance state", smp.pstateRet, fmt.Sprintf("P%d", smp.pstate))
		show("clock event reasons", smp.clocks.ret, fmt.Sprintf("0x%x", smp.clocks.reasons))
		show("temperature (GPU)", smp.tempRet, smp.temp)
		show("InfoROM validation", inforomReadResult(smp.inforom), smp.inforom == nvml.SUCCESS)
		show("fabric state/status/mask", smp.fabric.ret, fmt.Sprintf("%s mask=0x%x (mask read %v) summary=%q", fabricStatusName(smp.fabric.state, smp.fabric.status),
			smp.fabric.mask, smp.fabric.hasMask, fabricSummaryName(smp.fabric.summary)))
	}
	// Two polls: the second judges the rates and baselines of the first,
	// and confirms what needs two sightings.
	for i := 0; i < 2; i++ {
		if err := s.poll(ctx, rec); err != nil {
			return err
		}
	}
	if o.Wait > 0 && s.events != nil {
		fmt.Fprintf(w, "waiting %s for XID events…\n", o.Wait)
		end := time.Now().Add(o.Wait)
		for time.Now().Before(end) && ctx.Err() == nil {
			if err := s.waitEvent(ctx, rec, min(time.Until(end), 2*time.Second)); err != nil {
				return err
			}
		}
	}
	report := NewReport(board.Get(), latest(rec.raised()))
	if o.JSON {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "\n== per-GPU report (two polls; findings they raised)\n")
		report.Write(w, func(t time.Time) string { return t.Local().Format("15:04:05") })
	}
	var errs []error
	if n := len(latest(rec.raised())); n > 0 {
		errs = append(errs, fmt.Errorf("%w: %d finding(s)", ErrUnhealthy, n))
	}
	if failed > 0 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrUnread, failed))
	}
	rec.mu.Lock()
	errs = append(errs, rec.errs...)
	rec.mu.Unlock()
	return errors.Join(errs...)
}

// latest keeps the last raise of each finding identity: polls raise an
// active Fatal finding again every time, as the daemon's state merges.
func latest(fs []finding.Finding) []finding.Finding {
	at := map[string]int{}
	var out []finding.Finding
	for _, f := range fs {
		if i, ok := at[f.Identity()]; ok {
			out[i] = f
			continue
		}
		at[f.Identity()] = len(out)
		out = append(out, f)
	}
	return out
}

// inforomReadResult is the validation's return code as a read: a corrupt
// InfoROM is a verdict, not a failed read.
func inforomReadResult(ret nvml.Return) nvml.Return {
	if ret == nvml.ERROR_CORRUPTED_INFOROM {
		return nvml.SUCCESS
	}
	return ret
}

// collector is an Emitter that keeps what it is given. An XID event
// becomes the finding the built-in catalogue's XID rules make of it, as
// the daemon makes it with the rules it runs.
type collector struct {
	mu      sync.Mutex
	raises  []finding.Finding
	cleared []finding.Clear
	// errs are events the rules could not instantiate.
	errs []error
}

// builtinRules are the built-in catalogue's rules, compiled once.
var builtinRules = sync.OnceValues(func() (*rules.Set, error) {
	f, err := rules.Catalogue()
	if err != nil {
		return nil, err
	}
	return rules.Compile(f, rules.Options{})
})

func (c *collector) Observe(ev policy.Event) {
	set, err := builtinRules()
	var o policy.Observation
	ok := false
	if err == nil {
		o, ok, err = set.Instantiate(ev)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		c.errs = append(c.errs, err)
	case ok:
		// Built from the catalogue's templates and NVML's numbers: nothing
		// for the policy to redact, and no config to apply.
		c.raises = append(c.raises, o.Finding)
	}
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
