// Package daemon is the pipeline: sources → rules → policy → state →
// publishers, with the detectors' observations joining at the policy. One
// goroutine owns the rule engine, the policy stage and the state, so the
// order of records decides everything and a commit is a single consistent
// snapshot of positions, windows, findings and conditions.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/hardware"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/rules"
	"github.com/nodehealthd/nodehealthd/internal/source"
	"github.com/nodehealthd/nodehealthd/internal/source/kmsg"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// Options configure a daemon run.
type Options struct {
	// Root prefixes every host path ("/" on a node, /.bottlerocket/rootfs
	// in the Bottlerocket host container, a fixture tree in tests).
	Root       string
	StateDir   string
	ConfigPath string
	// RulesDir overrides the config file's rulesDir when set.
	RulesDir   string
	Logger     *slog.Logger
	Publishers []publish.Publisher
	// Outbox keeps Warning findings in the state file until a publisher
	// acknowledges them (set when a cluster publisher runs).
	Outbox bool
	// CommitInterval bounds how long processed records wait before their
	// findings and positions are committed together (default 100ms).
	CommitInterval time.Duration
	// HousekeepingInterval, when set, caps how long housekeeping (expiry,
	// operator requests, liveness shown to publishers) waits: config.yaml's
	// housekeepingInterval (default 30s) is used when shorter. The systemd
	// watchdog sets it to a third of its interval.
	HousekeepingInterval time.Duration
	// KmsgDevice, when set, is the kernel log device systemd opened for
	// the daemon (kmsg.Inherited); otherwise Root's /dev/kmsg is opened.
	KmsgDevice *kmsg.Device
	// NewSources builds the sources for a rule set; tests replace it.
	NewSources func(SourceContext) []source.Source
	// NewDetectors builds the non-log detectors (probes, NVML). They are
	// rebuilt, like the sources, when the configuration changes.
	NewDetectors func(SourceContext) []detector.Detector
	// LiveSections are published on the state directory's lock socket for
	// nodehealthctl (state.Store.PublishLive), e.g. "gpu".
	LiveSections map[string]func() any
}

// SourceContext is what a source factory may use.
type SourceContext struct {
	Root       string
	KmsgDevice *kmsg.Device
	Inputs     rules.Inputs
	Config     *config.Config
	BootID     string
	BootTime   time.Time
	FirstStart time.Time
	Logger     *slog.Logger
	// Active holds the active findings at (re)start, so that a detector can
	// take over the ones it raised before and clear them when its check
	// passes again: a restart must not leave them stuck.
	Active []finding.Finding
}

// Daemon is one run of the pipeline.
type Daemon struct {
	opts     Options
	log      *slog.Logger
	store    *state.Store
	st       *state.State
	cfg      *config.Config
	set      *rules.Set
	engine   *rules.Engine
	stage    *policy.Stage
	inputs   rules.Inputs
	acc      condition.Accelerator
	bootID   string
	bootTime time.Time

	changes state.Changes
	// dirty means the state in memory differs from the state file;
	// condChanged that the conditions changed since publishers last saw
	// them (kept across failed saves, so no change goes unpublished).
	dirty       bool
	condChanged bool
	buf         []policy.Observation
	stats       publish.Stats
	events      chan detectorEvent

	// feedback from publishers, applied by the pipeline goroutine.
	fbMu sync.Mutex
	acks []uint64
	link *state.ClusterLink
	// sentEvents is the cluster publisher's event memory, when it sent one.
	sentEvents     []state.SentEvent
	haveSentEvents bool
	// lastCommit is when the state was last saved.
	lastCommit time.Time
	// fbKick wakes the pipeline so that feedback reaches the state file
	// (and nodehealthctl status) promptly rather than at the next tick.
	fbKick chan struct{}

	// unsaved is the running episode of failed state saves (nil while the
	// file is written); no save is tried before saveRetry. persistReason
	// is the reason of the finding raised for the episode.
	unsaved       *state.SaveFailure
	saveRetry     time.Time
	saveBackoff   time.Duration
	persistReason string
	writer        *writer
	// applied are request files applied in memory; each is deleted once a
	// save that includes it succeeds, so that nodehealthctl clear never
	// reports a clear that a restart would forget.
	applied map[string]bool
	// fatal stops the daemon: another process took its state directory.
	fatal error
	// memLimitLogged and gcLogged say the soft memory limit and the GC
	// target have been logged.
	memLimitLogged, gcLogged bool
	// coalesce fires when the oldest pending repeats of a Warning are due.
	coalesce dueTimer
}

// Run runs the daemon until ctx ends. It returns an error only when it
// cannot start at all (state directory unusable); bad rules, a bad config
// or missing sources are logged and worked around.
func Run(ctx context.Context, opts Options) error {
	if opts.Root == "" {
		opts.Root = "/"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CommitInterval <= 0 {
		opts.CommitInterval = 100 * time.Millisecond
	}
	if opts.NewSources == nil {
		opts.NewSources = DefaultSources
	}
	d := &Daemon{opts: opts, log: opts.Logger, events: make(chan detectorEvent, 1024), fbKick: make(chan struct{}, 1), applied: map[string]bool{}}
	d.resetStats()
	return d.run(ctx)
}

func (d *Daemon) run(ctx context.Context) error {
	now := time.Now()
	var err error
	if d.bootID, err = host.BootID(d.opts.Root); err != nil {
		// Without a boot ID reboot recovery cannot work, but detection can.
		d.log.Error("cannot read boot ID; findings will not clear on reboot", "err", err)
		d.bootID = "unknown"
	}
	if d.bootTime, err = host.BootTime(d.opts.Root); err != nil {
		d.log.Warn("cannot read boot time; using now", "err", err)
		d.bootTime = now
	}
	d.store, d.st, err = state.Open(d.opts.StateDir, d.bootID, now, d.log)
	if err != nil {
		return err
	}
	defer d.store.Close()
	d.writer = startWriter(d.store)
	// A write stuck on a hung disk keeps its goroutine; the process
	// exits around it.
	defer close(d.writer.req)
	for name, read := range d.opts.LiveSections {
		d.store.PublishLive(name, read)
	}
	if n := d.st.Reboot(d.bootID, now, &d.changes); n > 0 {
		d.log.Info("new boot: cleared findings of the previous boot", "count", n)
	}
	if d.st.Lost == nil {
		d.st.Lost = map[string]uint64{}
	}
	d.acc = hardware.Detect(d.opts.Root)
	if err := d.reload(true); err != nil {
		d.log.Error("starting without operator rules or config", "err", err)
	}
	d.dirty = true
	for _, p := range d.opts.Publishers {
		if s, ok := p.(publish.Starter); ok {
			s.Start(ctx, d)
		}
	}
	// Watch before the first commit: whoever waits for the state file to
	// appear may change rules right away and expects that to be seen.
	reloadCh := make(chan os.Signal, 1)
	signal.Notify(reloadCh, syscall.SIGHUP)
	defer signal.Stop(reloadCh)
	watch := d.watchFiles(ctx)
	defer watch.close()
	var reloadDue <-chan time.Time
	d.replay()
	d.commit(now)

	gen := 0
	var batches chan source.Batch
	results := make(chan sourceResult, 16)
	var cancelSources context.CancelFunc
	start := func() {
		if cancelSources != nil {
			cancelSources()
		}
		gen++
		var sctx context.Context
		sctx, cancelSources = context.WithCancel(ctx)
		batches = make(chan source.Batch, batchQueue)
		sc := SourceContext{
			Root: d.opts.Root, KmsgDevice: d.opts.KmsgDevice, Inputs: d.inputs, Config: d.cfg, BootID: d.bootID,
			BootTime: d.bootTime, FirstStart: d.st.FirstStart, Logger: d.log,
			Active: slices.Clone(d.st.Active),
		}
		srcs := d.opts.NewSources(sc)
		if d.opts.NewDetectors != nil {
			for _, det := range d.opts.NewDetectors(sc) {
				go runDetector(sctx, det, emitter{ctx: sctx, ch: d.events}, d.log)
			}
		}
		positions := make(map[string]source.Position, len(d.st.Positions))
		for k, v := range d.st.Positions {
			positions[k] = v
		}
		for _, s := range srcs {
			go runSource(sctx, s, positions, batches, results, gen, d.log)
		}
	}
	start()
	defer func() { cancelSources() }()

	// Housekeeping (expiry, liveness for the watchdog and /readyz) runs at a
	// slow tick: every wake-up of an idle daemon costs CPU on every node.
	tickEvery := d.housekeepingInterval()
	tick := time.NewTicker(tickEvery)
	retick := func() {
		if iv := d.housekeepingInterval(); iv != tickEvery {
			tickEvery = iv
			tick.Reset(iv)
		}
	}
	reload := func() {
		if d.reloadAndReport() {
			start()
		}
		// config.yaml may have moved rulesDir or changed the interval.
		watch.follow(d.watchedDirs())
		retick()
	}
	var deferred <-chan time.Time
	defer tick.Stop()
	for {
		if d.fatal != nil {
			return d.fatal
		}
		select {
		case <-ctx.Done():
			d.commit(time.Now())
			return nil
		case b := <-batches:
			d.process(b)
			d.drain(batches)
			// New or cleared findings are committed at once. Batches that
			// only move positions (a busy log matching nothing) are
			// committed at most once per positionCommitInterval: a crash
			// before then only re-reads records that produced nothing.
			if len(d.changes.New) > 0 || len(d.changes.Cleared) > 0 || time.Since(d.lastCommit) >= positionCommitInterval {
				d.commit(time.Now())
			} else if deferred == nil {
				deferred = time.After(positionCommitInterval - time.Since(d.lastCommit))
			}
		case <-deferred:
			deferred = nil
			d.commit(time.Now())
		case <-d.coalesce.C():
			// Repeats of a Warning waited their window: committed now,
			// not at the next housekeeping tick, which may be much later.
			d.coalesce.fired()
			now := time.Now()
			if d.st.FlushCoalesced(now, d.opts.Outbox, &d.changes) > 0 {
				d.dirty = true
			}
			d.commit(now)
		case ev := <-d.events:
			d.detectorEvent(ev)
			d.drainEvents()
			d.commit(time.Now())
		case r := <-results:
			if r.gen == gen {
				d.sourceStopped(r)
			}
		case <-tick.C:
			d.housekeeping(time.Now())
			// A rules directory created since the last look is watched
			// from now on.
			watch.follow(d.watchedDirs())
		case name := <-watch.events:
			what := d.changed(name)
			if what&changedRequest != 0 {
				d.housekeeping(time.Now())
			}
			if what&changedConfig != 0 {
				// Editors write a file in several steps: reload once
				// they are done.
				reloadDue = time.After(reloadDebounce)
			}
		case <-d.fbKick:
			d.commit(time.Now())
		case <-d.writer.returned:
			d.writeReturned()
		case <-reloadCh:
			d.log.Info("SIGHUP: reloading rules and config")
			reload()
		case <-reloadDue:
			reloadDue = nil
			d.log.Info("rules or config changed on disk: reloading")
			reload()
		}
	}
}

func (d *Daemon) resetStats() {
	d.stats = publish.Stats{Records: map[string]int{}, Lost: map[string]uint64{}, Truncated: map[string]uint64{}, SourceTime: map[string]time.Time{}}
}

// positionCommitInterval bounds how long positions that produced no
// finding wait to be saved; each save costs a state write and an fsync.
const positionCommitInterval = time.Second

// defaultHousekeeping is how often expiry is checked and liveness shown to
// publishers when config.yaml does not say: each tick is a wake-up of an
// idle daemon on every node, and nothing it does is urgent (requests and
// config changes are watched; /readyz allows two minutes).
const defaultHousekeeping = 30 * time.Second

// housekeepingInterval is config.yaml's, capped by Options.
func (d *Daemon) housekeepingInterval() time.Duration {
	iv := d.cfg.HousekeepingInterval
	if iv <= 0 {
		iv = defaultHousekeeping
	}
	if d.opts.HousekeepingInterval > 0 {
		iv = min(iv, d.opts.HousekeepingInterval)
	}
	return iv
}

// maxDrain bounds how many records one commit covers.
const maxDrain = 50000

// maxNewPerCommit bounds the new findings one commit covers: they are held
// in memory until the commit hands them to the publishers, and a flood of
// distinct findings must not make that grow with the flood.
const maxNewPerCommit = 1024

// batchQueue is how many batches may wait for the pipeline goroutine. A
// source blocks when the queue is full and reads on when there is room:
// a flood is read as fast as it is processed, and what waits in memory is
// a few batches (each at most a source's MaxBatch records).
const batchQueue = 4

// drain processes batches that are already waiting or arrive within the
// commit interval, so that a burst costs one state write, not one per batch.
func (d *Daemon) drain(batches <-chan source.Batch) {
	deadline := time.NewTimer(d.opts.CommitInterval)
	defer deadline.Stop()
	n := 0
	for n < maxDrain && len(d.changes.New) < maxNewPerCommit {
		select {
		case b := <-batches:
			n += len(b.Records)
			d.process(b)
		case <-deadline.C:
			return
		}
	}
}

func (d *Daemon) process(b source.Batch) {
	start := time.Now()
	defer func() { d.stats.RuleTime += time.Since(start) }()
	d.stats.Records[b.Source] += len(b.Records)
	if n := len(b.Records); n > 0 {
		d.stats.SourceTime[b.Source] = b.Records[n-1].Time
	}
	for i := range b.Records {
		d.buf = d.engine.Process(&b.Records[i], d.buf[:0])
		for _, o := range d.buf {
			d.observe(o)
		}
	}
	// Findings copy what they keep of a record (policy.Stage.Apply), so
	// the source may reuse the records' memory now.
	if b.Recycle != nil {
		b.Recycle()
	}
	d.st.Positions[b.Source] = b.Position
	if b.Truncated > 0 {
		d.stats.Truncated[b.Source] += b.Truncated
	}
	if b.Lost > 0 {
		d.st.Lost[b.Source] += b.Lost
		d.stats.Lost[b.Source] += b.Lost
		d.log.Warn("records lost before they could be read", "source", b.Source, "lost", b.Lost, "lost_total", d.st.Lost[b.Source])
	}
	d.dirty = true
}

func (d *Daemon) housekeeping(now time.Time) {
	if n := d.st.Expire(now, &d.changes); n > 0 {
		d.dirty = true
	}
	if n := d.st.FlushCoalesced(now, d.opts.Outbox, &d.changes); n > 0 {
		d.dirty = true
	}
	d.stage.Expire(now)
	d.requests(now)
	if recreated, err := d.store.Check(); err != nil {
		d.stop(err)
	} else if recreated {
		d.dirty = true
	}
	d.commit(now)
	if d.unsaved == nil && !d.dirty {
		for name := range d.applied {
			d.store.DoneRequest(name)
			delete(d.applied, name)
		}
	}
	for _, p := range d.opts.Publishers {
		if t, ok := p.(publish.Ticker); ok {
			t.Tick(now)
		}
	}
}

// requests applies the operator's queued requests in memory, each once;
// housekeeping deletes them after the state that includes them is saved.
func (d *Daemon) requests(now time.Time) {
	for _, r := range d.store.PendingRequests(now) {
		switch {
		case r.Err != nil:
			d.log.Warn("refusing a request file", "file", r.Name, "err", r.Err)
			d.store.DoneRequest(r.Name)
		case d.applied[r.Name]:
		case r.Request.Clear != nil:
			n := d.st.Clear(*r.Request.Clear, now, &d.changes)
			d.log.Info("operator clear", "reason", r.Request.Clear.Reason, "key", r.Request.Clear.Key, "cleared", n)
			d.applied[r.Name] = true
			d.dirty = true
		}
	}
}

func (d *Daemon) stop(err error) {
	if d.fatal == nil {
		d.fatal = fmt.Errorf("stopping: %w", err)
	}
}
