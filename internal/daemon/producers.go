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

// runDetector runs a detector, restarting it with backoff when it fails.
func runDetector(ctx context.Context, det detector.Detector, emit detector.Emitter, log *slog.Logger) {
	backoff := time.Second
	for {
		err := det.Run(ctx, emit)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			return
		}
		log.Error("detector failed; restarting", "detector", det.Name(), "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Minute)
	}
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
