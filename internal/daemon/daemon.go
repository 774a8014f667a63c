// Package daemon is the pipeline: sources → rules → findings → state →
// publishers. One goroutine owns the rule engine and the state, so the
// order of records decides everything and a commit is a single consistent
// snapshot of positions, windows, findings and conditions.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/hardware"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/rules"
	"github.com/nodehealthd/nodehealthd/internal/source"
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
	// NewSources builds the sources for a rule set; tests replace it.
	NewSources func(SourceContext) []source.Source
}

// SourceContext is what a source factory may use.
type SourceContext struct {
	Root       string
	Inputs     rules.Inputs
	Config     *config.Config
	BootID     string
	BootTime   time.Time
	FirstStart time.Time
	Logger     *slog.Logger
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
	inputs   rules.Inputs
	acc      condition.Accelerator
	bootID   string
	bootTime time.Time

	changes state.Changes
	dirty   bool
	buf     []finding.Finding
	// reloadErr is the last failed reload, shown until a reload succeeds.
	reloadErr error
}

type sourceResult struct {
	name string
	gen  int
	err  error
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
	d := &Daemon{opts: opts, log: opts.Logger}
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
	d.commit(now)

	reloadCh := make(chan os.Signal, 1)
	signal.Notify(reloadCh, syscall.SIGHUP)
	defer signal.Stop(reloadCh)
	watchCh := d.watchConfig(ctx)

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
		batches = make(chan source.Batch, 64)
		srcs := d.opts.NewSources(SourceContext{
			Root: d.opts.Root, Inputs: d.inputs, Config: d.cfg, BootID: d.bootID,
			BootTime: d.bootTime, FirstStart: d.st.FirstStart, Logger: d.log,
		})
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

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			d.commit(time.Now())
			return nil
		case b := <-batches:
			d.process(b)
			d.drain(batches)
			d.commit(time.Now())
		case r := <-results:
			if r.gen == gen {
				d.sourceStopped(r)
			}
		case <-tick.C:
			d.housekeeping(time.Now())
		case <-reloadCh:
			d.log.Info("SIGHUP: reloading rules and config")
			if d.reloadAndReport() {
				start()
			}
		case <-watchCh:
			d.log.Info("rules or config changed on disk: reloading")
			if d.reloadAndReport() {
				start()
			}
		}
	}
}

// runSource runs one source and reports how it ended. A source that fails
// for a reason other than not existing here is restarted with backoff from
// the last committed positions it was given.
func runSource(ctx context.Context, s source.Source, start map[string]source.Position, out chan<- source.Batch, results chan<- sourceResult, gen int, log *slog.Logger) {
	backoff := time.Second
	for {
		err := s.Run(ctx, start, out)
		if ctx.Err() != nil {
			return
		}
		if err == nil || errors.Is(err, source.ErrUnavailable) {
			select {
			case results <- sourceResult{name: s.Name(), gen: gen, err: err}:
			case <-ctx.Done():
			}
			return
		}
		log.Error("source failed; restarting", "source", s.Name(), "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (d *Daemon) sourceStopped(r sourceResult) {
	if errors.Is(r.err, source.ErrUnavailable) {
		d.log.Warn("log source not available on this host; continuing without it", "source", r.name, "reason", r.err)
		return
	}
	d.log.Info("source finished", "source", r.name)
}

// maxDrain bounds how many records one commit covers.
const maxDrain = 50000

// drain processes batches that are already waiting or arrive within the
// commit interval, so that a burst costs one state write, not one per batch.
func (d *Daemon) drain(batches <-chan source.Batch) {
	deadline := time.NewTimer(d.opts.CommitInterval)
	defer deadline.Stop()
	n := 0
	for n < maxDrain {
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
	for i := range b.Records {
		d.buf = d.engine.Process(&b.Records[i], d.buf[:0])
		for _, f := range d.buf {
			f.BootID = d.bootID
			d.st.Raise(f, d.opts.Outbox, &d.changes)
		}
	}
	d.st.Positions[b.Source] = b.Position
	if b.Lost > 0 {
		d.st.Lost[b.Source] += b.Lost
		d.log.Warn("records lost before they could be read", "source", b.Source, "lost", b.Lost, "lost_total", d.st.Lost[b.Source])
	}
	d.dirty = true
}

func (d *Daemon) housekeeping(now time.Time) {
	if n := d.st.Expire(now, &d.changes); n > 0 {
		d.dirty = true
	}
	d.engine.Expire(now)
	names, reqs := d.store.PendingRequests()
	for i, r := range reqs {
		switch {
		case r == nil:
			d.log.Warn("ignoring unreadable request file", "file", names[i])
		case r.Clear != nil:
			n := d.st.Clear(*r.Clear, now, &d.changes)
			d.log.Info("operator clear", "reason", r.Clear.Reason, "key", r.Clear.Key, "cleared", n)
			d.dirty = true
		}
	}
	if !d.changes.Empty() || d.dirty {
		d.commit(now)
	}
	for _, n := range names {
		d.store.DoneRequest(n)
	}
}

// commit saves the state and then tells the publishers; it is the only
// place state reaches disk.
func (d *Daemon) commit(now time.Time) {
	if !d.dirty && d.changes.Empty() {
		return
	}
	w, _ := d.engine.Windows()
	d.st.Windows = w
	condChanged := d.st.UpdateConditions(d.cfg.Monitored(d.acc != condition.NoAccelerator), d.acc, now)
	if err := d.store.Save(d.st, now); err != nil {
		// Keep running: the findings are in memory and the next commit
		// retries; positions not yet saved are simply re-read after a crash.
		d.log.Error("cannot save state", "err", err)
		return
	}
	u := publish.Update{Time: now, New: d.changes.New, Cleared: d.changes.Cleared, Conditions: d.st.Conditions, ConditionsChanged: condChanged, State: d.st}
	for _, p := range d.opts.Publishers {
		p.Publish(u)
	}
	d.changes = state.Changes{}
	d.dirty = false
}

func (d *Daemon) rulesDir() string {
	if d.opts.RulesDir != "" {
		return d.opts.RulesDir
	}
	if d.cfg != nil && d.cfg.RulesDir != "" {
		return d.cfg.RulesDir
	}
	return "/etc/nodehealthd/rules.d"
}

// reload loads config and rules. On failure the previous good set stays; at
// startup (no previous set) the built-in catalogue with defaults is used.
// It reports whether the sources must restart because their inputs changed.
func (d *Daemon) reload(initial bool) error {
	cfg, set, err := LoadRuleSet(d.opts.ConfigPath, d.opts.RulesDir)
	if err != nil {
		if !initial {
			return err
		}
		cfg = &config.Config{}
		builtin, berr := rules.Catalogue()
		if berr != nil {
			return fmt.Errorf("built-in catalogue: %w", berr)
		}
		set, berr = rules.Compile(builtin, rules.Options{})
		if berr != nil {
			return fmt.Errorf("built-in catalogue: %w", berr)
		}
		d.install(cfg, set)
		return err
	}
	d.install(cfg, set)
	return nil
}

func (d *Daemon) install(cfg *config.Config, set *rules.Set) {
	var windows rules.Windows
	if d.engine != nil {
		windows, _ = d.engine.Windows()
	} else {
		windows = d.st.Windows
	}
	d.cfg, d.set = cfg, set
	d.engine = rules.NewEngine(set)
	d.engine.SetWindows(windows)
	d.inputs = set.Inputs()
	d.dirty = true
}

// reloadAndReport reloads after a signal or file change and reports whether
// sources must restart.
func (d *Daemon) reloadAndReport() bool {
	old := d.inputs
	oldCfg := d.cfg
	if err := d.reload(false); err != nil {
		d.reloadErr = err
		d.log.Error("invalid rules or config; keeping the last good set", "err", err)
		return false
	}
	d.reloadErr = nil
	d.log.Info("rules reloaded", "rules", len(d.set.Rules()))
	d.commit(time.Now())
	return !reflect.DeepEqual(old, d.inputs) || !reflect.DeepEqual(oldCfg.Sources, d.cfg.Sources)
}

// LoadRuleSet reads the config and the operator rules and compiles them
// over the built-in catalogue. nodehealthctl uses it too, so that what it
// validates is what the daemon runs.
func LoadRuleSet(configPath, rulesDir string) (*config.Config, *rules.Set, error) {
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, nil, err
	}
	if rulesDir == "" {
		rulesDir = cfg.RulesDir
	}
	if rulesDir == "" {
		rulesDir = "/etc/nodehealthd/rules.d"
	}
	builtin, err := rules.Catalogue()
	if err != nil {
		return nil, nil, fmt.Errorf("built-in catalogue: %w", err)
	}
	operator, err := rules.LoadDir(rulesDir)
	if err != nil {
		return nil, nil, err
	}
	set, err := rules.Compile(rules.Merge(builtin, operator), cfg.RuleOptions())
	if err != nil {
		return nil, nil, err
	}
	return cfg, set, nil
}

// watchConfig signals when the config file or a rules file changes. Events
// are debounced: editors write files in several steps.
func (d *Daemon) watchConfig(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		d.log.Warn("cannot watch rules for changes; reload with SIGHUP", "err", err)
		return out
	}
	for _, dir := range []string{d.rulesDir(), filepath.Dir(d.opts.ConfigPath)} {
		if dir == "" {
			continue
		}
		if err := w.Add(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.log.Debug("not watching", "dir", dir, "err", err)
		}
	}
	go func() {
		defer w.Close()
		var fire <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Name == d.opts.ConfigPath || filepath.Dir(ev.Name) == filepath.Clean(d.rulesDir()) {
					fire = time.After(300 * time.Millisecond)
				}
			case <-w.Errors:
			case <-fire:
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}
