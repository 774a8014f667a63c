package daemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

type sourceResult struct {
	name string
	gen  int
	err  error
}

type detectorEvent struct {
	raise   *finding.Finding
	observe *policy.Event
	clear   *finding.Clear
}

// emitter hands detector results to the pipeline goroutine.
type emitter struct {
	ctx context.Context
	ch  chan<- detectorEvent
}

func (e emitter) Raise(f finding.Finding) {
	select {
	case e.ch <- detectorEvent{raise: &f}:
	case <-e.ctx.Done():
	}
}

func (e emitter) Observe(ev policy.Event) {
	select {
	case e.ch <- detectorEvent{observe: &ev}:
	case <-e.ctx.Done():
	}
}

func (e emitter) Clear(c finding.Clear) {
	select {
	case e.ch <- detectorEvent{clear: &c}:
	case <-e.ctx.Done():
	}
}

// runSource runs one source and reports how it ended. A source that fails
// for a reason other than not existing here is restarted with backoff from
// the last committed positions it was given.
func runSource(ctx context.Context, s source.Source, start map[string]source.Position, out chan<- source.Batch, results chan<- sourceResult, gen int, log *slog.Logger) {
	restartWithBackoff(ctx, log, "source", s.Name(), 30*time.Second, func() (bool, error) {
		err := s.Run(ctx, start, out)
		if ctx.Err() == nil && (err == nil || errors.Is(err, source.ErrUnavailable)) {
			select {
			case results <- sourceResult{name: s.Name(), gen: gen, err: err}:
			case <-ctx.Done():
			}
			return true, nil
		}
		return false, err
	})
}

// restartWithBackoff calls run until it is done or ctx ends. A failed run
// is logged and run again after a pause that doubles from 1 s up to max:
// a producer that fails must neither stop detection for good nor spin.
func restartWithBackoff(ctx context.Context, log *slog.Logger, what, name string, max time.Duration, run func() (done bool, err error)) {
	backoff := time.Second
	for {
		done, err := run()
		if done || ctx.Err() != nil {
			return
		}
		log.Error(what+" failed; restarting", what, name, "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, max)
	}
}

func (d *Daemon) sourceStopped(r sourceResult) {
	if errors.Is(r.err, source.ErrUnavailable) {
		d.log.Warn("log source not available on this host; continuing without it", "source", r.name, "reason", r.err)
		return
	}
	d.log.Info("source finished", "source", r.name)
}

// runDetector runs a detector, restarting it with backoff when it fails.
func runDetector(ctx context.Context, det detector.Detector, emit detector.Emitter, log *slog.Logger) {
	restartWithBackoff(ctx, log, "detector", det.Name(), 5*time.Minute, func() (bool, error) {
		err := det.Run(ctx, emit)
		return err == nil, err
	})
}

func (d *Daemon) detectorEvent(ev detectorEvent) {
	switch {
	case ev.raise != nil:
		d.observe(policy.Observation{Finding: *ev.raise})
	case ev.observe != nil:
		o, ok, err := d.set.Instantiate(*ev.observe)
		if err != nil {
			d.log.Warn("an event the rules cannot turn into a finding", "source", ev.observe.Source, "captures", ev.observe.Captures, "err", err)
			return
		}
		if ok {
			d.observe(o)
		}
	case ev.clear != nil:
		d.st.Clear(*ev.clear, time.Now(), &d.changes)
	}
}

// observe records what the policy stage makes of an observation: every
// producer's findings pass through here.
func (d *Daemon) observe(o policy.Observation) {
	if f, ok := d.stage.Apply(o); ok {
		n := len(d.changes.New)
		d.st.Raise(f, d.opts.Outbox, &d.changes)
		d.announceRecurrence(n)
	}
}

func (d *Daemon) drainEvents() {
	for {
		select {
		case ev := <-d.events:
			d.detectorEvent(ev)
		default:
			return
		}
	}
}
