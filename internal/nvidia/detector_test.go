package nvidia

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// runUntil runs d until cond holds (or 5s pass), then stops it and returns
// Run's error.
func runUntil(t *testing.T, d *Detector, rec *collector, cond func() bool) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, rec) }()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("condition not reached; raised %+v", rec.raised())
		}
		select {
		case err := <-done:
			cancel()
			return err
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	return <-done
}

func TestInitFailureRetriesAndIsReportedOnce(t *testing.T) {
	f := newFakeNVML(t, 1)
	f.initRets = []nvml.Return{nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_LIBRARY_NOT_FOUND,
		nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_LIBRARY_NOT_FOUND}
	o := f.options()
	o.UnavailableAfter = 2 * time.Minute
	board := o.Status
	// Each failed attempt moves the fake clock a minute on.
	inner := f.lib.InitFunc
	f.lib.InitFunc = func() nvml.Return {
		f.advance(time.Minute)
		return inner()
	}
	d := New(o)
	rec := &collector{}
	err := runUntil(t, d, rec, func() bool { return board.Get().Available })
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if f.inits != 7 {
		t.Fatalf("nvmlInit called %d times, want 7 (6 failures, then success)", f.inits)
	}
	un := only(rec.raised(), ReasonNVMLUnavailable)
	if len(un) != 1 {
		t.Fatalf("want NvidiaNVMLUnavailable once per outage, got %+v", un)
	}
	if un[0].Severity != finding.Warning || !strings.Contains(un[0].Message, "libnvidia-ml.so.1 cannot be loaded") {
		t.Fatalf("unavailable finding %+v", un[0])
	}
	if s := board.Get(); !s.Available || s.LastError != "" || !s.FailingSince.IsZero() || s.Devices != 1 || s.DriverVersion != "570.172.08" || !s.XIDEvents {
		t.Fatalf("status after recovery %+v", s)
	}
}

func TestShortInitOutageIsNotAFinding(t *testing.T) {
	f := newFakeNVML(t, 1)
	f.initRets = []nvml.Return{nvml.ERROR_DRIVER_NOT_LOADED}
	o := f.options()
	o.UnavailableAfter = time.Hour
	d := New(o)
	rec := &collector{}
	if err := runUntil(t, d, rec, func() bool { return o.Status.Get().Available }); err != nil {
		t.Fatal(err)
	}
	wantNoRaise(t, rec, ReasonNVMLUnavailable)
}

func TestHungNVMLIsReportedAndDoesNotPileUp(t *testing.T) {
	f := newFakeNVML(t, 2)
	release := make(chan struct{})
	o := f.options()
	o.CallTimeout = 100 * time.Millisecond
	o.Caller = NewCaller(testLogger(t)) // shared across the restarts below, as in the daemon
	board := o.Status
	// The second GPU's ECC read never returns, from the first poll on.
	f.gpus[1].set(func(g *fakeGPU) { g.block = release })

	rec := &collector{}
	start := time.Now()
	err := New(o).Run(context.Background(), rec)
	if !errors.Is(err, ErrHung) {
		t.Fatalf("Run = %v, want ErrHung", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Run took %s to give up on a hung call", took)
	}
	un := only(rec.raised(), ReasonNVMLUnavailable)
	if len(un) != 1 || !strings.Contains(un[0].Message, "read GPU 0000:11:00") {
		t.Fatalf("want one NvidiaNVMLUnavailable naming the hung call, got %+v", un)
	}
	if s := board.Get(); s.Available || s.Hung != "read GPU 0000:11:00" {
		t.Fatalf("status %+v", s)
	}

	// The daemon restarts the detector: while NVML stays stuck, every
	// restart is refused at once, reports nothing new and starts nothing.
	before := runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_ = New(o).Run(ctx, rec)
		cancel()
	}
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Fatalf("goroutines grew from %d to %d across restarts", before, after)
	}
	if un := only(rec.raised(), ReasonNVMLUnavailable); len(un) != 1 {
		t.Fatalf("reported %d times, want once per outage", len(un))
	}

	// The driver recovers: the next run initialises and works.
	f.gpus[1].set(func(g *fakeGPU) { g.block = nil })
	close(release)
	if err := runUntil(t, New(o), rec, func() bool { return board.Get().Available }); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if s := board.Get(); s.Hung != "" {
		t.Fatalf("status still hung: %+v", s)
	}
}

func TestHungEventWaitTimesOut(t *testing.T) {
	f := newFakeNVML(t, 1)
	release := make(chan struct{})
	defer close(release)
	f.lib.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return &blockingSet{release: release}, nvml.SUCCESS
	}
	o := f.options()
	o.CallTimeout = 100 * time.Millisecond
	err := New(o).Run(context.Background(), &collector{})
	if !errors.Is(err, ErrHung) {
		t.Fatalf("Run = %v, want ErrHung from the event wait", err)
	}
}

// blockingSet is an event set whose Wait never returns until released.
type blockingSet struct {
	nvml.EventSet
	release chan struct{}
}

func (b *blockingSet) Wait(uint32) (nvml.EventData, nvml.Return) {
	<-b.release
	return nvml.EventData{}, nvml.ERROR_TIMEOUT
}

func (b *blockingSet) Free() nvml.Return { return nvml.SUCCESS }

func TestRunPollsOnItsInterval(t *testing.T) {
	f := newFakeNVML(t, 1)
	f.gpus[0].set(func(g *fakeGPU) { g.dbe = 2 })
	o := f.options()
	o.Interval = 30 * time.Millisecond
	rec := &collector{}
	if err := runUntil(t, New(o), rec, func() bool { return len(only(rec.raised(), ReasonDoubleBitError)) >= 3 }); err != nil {
		t.Fatal(err)
	}
	if o.Status.Get().LastPoll.IsZero() {
		t.Fatal("LastPoll not recorded")
	}
}

func TestEnumerationFailureIsAnError(t *testing.T) {
	f := newFakeNVML(t, 1)
	f.lib.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	o := f.options()
	err := New(o).Run(context.Background(), &collector{})
	if err == nil || !strings.Contains(err.Error(), "nvmlDeviceGetCount") {
		t.Fatalf("Run = %v", err)
	}
	if f.shutdown != 1 {
		t.Fatalf("nvmlShutdown called %d times after a failed enumeration, want 1", f.shutdown)
	}
}

func TestUnreachableGPUAtStart(t *testing.T) {
	f := newFakeNVML(t, 2)
	f.lib.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i == 1 {
			return nil, nvml.ERROR_GPU_IS_LOST
		}
		return f.gpus[0].dev, nvml.SUCCESS
	}
	_, s := f.session(f.options())
	f.poll(s)
	r := wantRaise(t, f.next(s), ReasonDeviceCountMismatch, finding.Fatal, countKeyFiles)
	if !strings.Contains(r.Message, "1 usable GPUs (1 lost: index 1)") {
		t.Fatalf("message %q", r.Message)
	}
}
