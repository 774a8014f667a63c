package nvidia

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/nodehealthd/nodehealthd/internal/detector"
)

// Options configure the detector. Zero durations take the defaults below.
type Options struct {
	// Lib is the NVML library (OpenLibrary, or a mock in tests).
	Lib nvml.Interface
	// Caller runs the NVML calls; share one per process (nil: a new one).
	Caller *Caller
	// Status receives the monitoring status (nil: DefaultStatus).
	Status *StatusBoard
	Root   string
	Log    *slog.Logger
	Now    func() time.Time
	// InstanceType returns the EC2 instance type (IMDS.InstanceType); nil
	// skips the comparison with the instance's expected GPU count.
	InstanceType func(context.Context) (string, error)

	// Interval between counter polls (default 1m).
	Interval time.Duration
	// CallTimeout bounds one NVML call or one GPU's reads (default 30s).
	CallTimeout time.Duration
	// InitTimeout bounds nvmlInit, slow on many GPUs without persistence
	// mode (default 2m).
	InitTimeout time.Duration
	// EventWait is the longest single wait for an XID event; shutdown
	// waits for it, since a C call cannot be interrupted (default 2s).
	EventWait time.Duration
	// InitBackoff doubles from its value to MaxInitBackoff between
	// failed initialisations (defaults 10s, 5m).
	InitBackoff, MaxInitBackoff time.Duration
	// UnavailableAfter is how long NVML may fail to initialise before it
	// becomes an NvidiaNVMLUnavailable finding (default 5m: the driver
	// may load after the daemon on a booting node).
	UnavailableAfter time.Duration
	// Passes is how many consecutive passing polls clear a finding
	// (default 2, as the host probes).
	Passes int
	Limits Limits

	// fabric replaces the fabric read in tests.
	fabric fabricReader
}

// Detector watches NVIDIA GPUs through NVML: XID events as they happen,
// and counters, clocks, fabric state and the device count by polling.
type Detector struct {
	o Options
}

// New returns a detector with the defaults filled in.
func New(o Options) *Detector {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Interval, pollPeriod)
	def(&o.CallTimeout, 30*time.Second)
	def(&o.InitTimeout, 2*time.Minute)
	def(&o.EventWait, 2*time.Second)
	def(&o.InitBackoff, 10*time.Second)
	def(&o.MaxInitBackoff, 5*time.Minute)
	def(&o.UnavailableAfter, 5*time.Minute)
	if o.Passes <= 0 {
		o.Passes = 2
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Caller == nil {
		o.Caller = NewCaller(o.Log)
	}
	if o.Status == nil {
		o.Status = DefaultStatus
	}
	if o.fabric == nil {
		o.fabric = readFabric
	}
	if o.Root == "" {
		o.Root = "/"
	}
	o.Limits = o.Limits.withDefaults()
	return &Detector{o: o}
}

// OpenLibrary returns the NVML library at path ("" = libnvidia-ml.so.1 on
// the dynamic linker's path). Nothing is loaded until Init.
func OpenLibrary(path string) nvml.Interface {
	if path == "" {
		return nvml.New()
	}
	return nvml.New(nvml.WithLibraryPath(path))
}

// Name implements detector.Detector.
func (d *Detector) Name() string { return "nvml" }

// Run implements detector.Detector. It returns an error only when NVML
// hung or could not enumerate the GPUs; the daemon then restarts it with
// backoff.
func (d *Detector) Run(ctx context.Context, emit detector.Emitter) error {
	if !d.initialise(ctx, emit) {
		return nil
	}
	s, err := d.open(ctx)
	if err != nil {
		d.shutdown(nil)
		if ctx.Err() != nil {
			return nil
		}
		return d.failure(emit, err)
	}
	defer d.shutdown(s.events)
	return s.loop(ctx, emit)
}

// call runs f on the NVML worker.
func (d *Detector) call(ctx context.Context, op string, timeout time.Duration, f func()) error {
	return d.o.Caller.Do(ctx, op, timeout, f)
}

// initialise calls nvmlInit until it works or ctx ends (false). An outage
// that lasts is logged and raised once; a node without the library is a
// deployment problem, not a reason to stop trying (the driver may be
// installed later, e.g. by the GPU operator).
func (d *Detector) initialise(ctx context.Context, emit detector.Emitter) bool {
	backoff := d.o.InitBackoff
	var lastWarn time.Time
	for {
		ret := nvml.ERROR_UNKNOWN
		err := d.call(ctx, "nvmlInit", d.o.InitTimeout, func() { ret = d.o.Lib.Init() })
		if ctx.Err() != nil {
			return false
		}
		if err == nil && ret == nvml.SUCCESS {
			return true
		}
		if err == nil {
			err = initError(ret)
		}
		if errors.Is(err, ErrHung) {
			_ = d.failure(emit, err)
		} else {
			now := d.o.Now()
			if d.o.Status.failed(now, err.Error(), d.o.UnavailableAfter) {
				d.raiseUnavailable(emit, now, fmt.Sprintf("NVML unavailable for %s: %v", d.o.UnavailableAfter, err))
			}
			if now.Sub(lastWarn) >= time.Hour {
				d.o.Log.Warn("NVML unavailable; GPU counters are not checked (XIDs are still read from kmsg)", "err", err, "retry_in", backoff)
				lastWarn = now
			} else {
				d.o.Log.Debug("NVML still unavailable", "err", err, "retry_in", backoff)
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, d.o.MaxInitBackoff)
	}
}

// initError explains an nvmlInit failure in terms an operator can act on.
func initError(ret nvml.Return) error {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return errors.New("libnvidia-ml.so.1 cannot be loaded: the NVIDIA driver's user-space libraries are not installed where the daemon looks (see --nvml-library)")
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return errors.New("NVML: the NVIDIA kernel driver is not loaded")
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return errors.New("NVML: driver/library version mismatch (the driver was updated without a reboot)")
	case nvml.ERROR_NO_PERMISSION:
		return errors.New("NVML: no permission to open the GPU device files")
	}
	return fmt.Errorf("NVML initialisation failed: %v", ret)
}

// failure reports an NVML failure that interrupts monitoring: once per
// outage as a finding, always in the status. A hung call is reported at
// once, since a call that does not return in 30s is itself abnormal.
func (d *Detector) failure(emit detector.Emitter, err error) error {
	now := d.o.Now()
	grace := d.o.UnavailableAfter
	var he *HungError
	if errors.As(err, &he) {
		grace = 0
		d.o.Status.update(func(s *Status) { s.Hung, s.HungSince = he.Op, he.Since })
	}
	if d.o.Status.failed(now, err.Error(), grace) {
		d.raiseUnavailable(emit, now, fmt.Sprintf("NVML checks are suspended: %v. A hung NVML usually means a GPU fell off the bus or the driver is stuck; see the XID findings from kmsg", err))
	}
	return err
}

func (d *Detector) raiseUnavailable(emit detector.Emitter, now time.Time, msg string) {
	emit.Raise(nvmlUnavailable.Result(msg, "").Finding("nvml", Source, now))
}

// shutdown frees the event set and releases NVML, each bounded; after a
// hang the calls are refused, which only leaks a little driver state.
func (d *Detector) shutdown(events nvml.EventSet) {
	ctx := context.Background()
	if events != nil {
		_ = d.call(ctx, "nvmlEventSetFree", d.o.CallTimeout, func() { events.Free() })
	}
	_ = d.call(ctx, "nvmlShutdown", d.o.CallTimeout, func() { d.o.Lib.Shutdown() })
}
