package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/probe"
)

// --once: check every host probe against --root, print what they find and
// what they could not check, and exit. It is for checking a node (or a
// fixture tree) by hand and in CI: no jitter, no hysteresis, no state file,
// no publishing.

// Exit statuses of --once. Findings are the command working, so they exit
// 0 like a healthy node; so do inconclusive and skipped probes, which are
// printed. 2 (invalid options) is run's.
const (
	onceOK     = 0
	onceFailed = 1 // a probe failed, or the probes could not be built
	onceUsage  = 2
)

const (
	defaultOnceWindow = 10 * time.Second
	// onceCheckTimeout bounds one check, as the daemon's runner does; the
	// whole of --once ends within the window plus this.
	onceCheckTimeout = 30 * time.Second
)

// runOnce is --once; it returns the exit status.
func (e *env) runOnce() int {
	if e.o.once.window < 0 {
		e.log.Error("invalid option", "err", fmt.Sprintf("--once-window %v: must not be negative", e.o.once.window))
		return onceUsage
	}
	return e.probeOnce(e.ctx, e.o.root, e.cfg, e.hostTags(), e.log, e.stdout, e.o.output, e.o.once)
}

// onceOptions are --once's own flags.
type onceOptions struct {
	enabled bool
	// window is --once-window: the time over which a probe that needs
	// several checks is checked.
	window time.Duration
	// liveHost is --once-live-host: run the probes that read the running
	// host even under a --root other than /.
	liveHost bool
}

// onceLine is one finding as --once -o json prints it.
type onceLine struct {
	Event     string `json:"event"` // "finding"
	Probe     string `json:"probe"`
	Condition string `json:"condition"`
	Reason    string `json:"reason"`
	Severity  string `json:"severity"`
	Message   string `json:"message"`
	Key       string `json:"key,omitempty"`
}

// Statuses of a probe that --once reports on a line of its own.
const (
	probeFailed       = "failed"
	probeInconclusive = "inconclusive"
	probeSkipped      = "skipped"
)

// onceProbeLine is a probe that failed, could not conclude or was skipped,
// as --once -o json prints it.
type onceProbeLine struct {
	Event  string `json:"event"` // "probe"
	Probe  string `json:"probe"`
	Status string `json:"status"`
	// Error is why a failed probe's check could not run.
	Error string `json:"error,omitempty"`
	// Message says why an inconclusive probe could not conclude, or what
	// a skipped one would have read.
	Message string `json:"message,omitempty"`
}

// onceOutcome is what --once learnt from one probe.
type onceOutcome struct {
	// results are the last successful check's.
	results []probe.Result
	// status is "" when the probe concluded, else a probe* status.
	status, detail string
}

// probeOnce checks every probe as often as it needs (probe.Needs), spread
// over opts.window, all probes at once, and prints the findings and the
// probes that failed, could not conclude or were skipped, sorted by probe.
// It returns the exit status.
func (e *env) probeOnce(ctx context.Context, root string, cfg *config.Config, tags map[string]bool, log *slog.Logger, w io.Writer, format string, opts onceOptions) int {
	if cfg == nil {
		cfg = &config.Config{}
	}
	if !cfg.Probes.On() {
		log.Warn("host probes disabled by probes.enabled: false in the configuration; nothing to check")
		return onceOK
	}
	penv := e.probeEnv(root, log, tags)
	probes, err := probe.Build(penv, cfg.Probes.Sections)
	if err != nil {
		log.Error("cannot build host probes", "err", err)
		return onceFailed
	}
	sort.Slice(probes, func(i, j int) bool { return probes[i].Name() < probes[j].Name() })
	ctx, cancel := context.WithTimeoutCause(ctx, opts.window+onceCheckTimeout,
		fmt.Errorf("--once ran for --once-window (%v) plus %v", opts.window, onceCheckTimeout))
	defer cancel()
	foreign := root != "" && filepath.Clean(root) != "/"
	start := time.Now()
	outcomes := make([]onceOutcome, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcomes[i] = observe(ctx, p, penv, start, opts, foreign)
			if outcomes[i].status == probeFailed {
				log.Warn("probe failed", "probe", p.Name(), "err", outcomes[i].detail)
			}
		}()
	}
	wg.Wait()
	code := onceOK
	enc := json.NewEncoder(w)
	// The daemon's policy stage: config.yaml's reasons overrides apply as
	// they do to the daemon's findings. A threshold counts the observations
	// of this run only.
	stage := policy.New(cfg.Reasons).Stage("", nil)
	for i, p := range probes {
		for _, res := range outcomes[i].results {
			r, ok := stage.Apply(policy.Observation{Finding: res.Finding(p.Name(), "probe:"+p.Name(), start)})
			if !ok {
				continue
			}
			switch format {
			case "json":
				_ = enc.Encode(onceLine{Event: "finding", Probe: p.Name(), Condition: r.Condition, Reason: r.Reason, Severity: string(r.Severity), Message: r.Message, Key: r.Key})
			case "none":
			default:
				key := ""
				if r.Key != "" {
					key = " [" + r.Key + "]"
				}
				fmt.Fprintf(w, "%-7s %s/%s%s: %s (probe %s)\n", r.Severity, r.Condition, r.Reason, key, r.Message, p.Name())
			}
		}
		o := outcomes[i]
		if o.status == "" {
			continue
		}
		if o.status == probeFailed {
			code = onceFailed
		}
		switch format {
		case "json":
			l := onceProbeLine{Event: "probe", Probe: p.Name(), Status: o.status, Message: o.detail}
			if o.status == probeFailed {
				l.Error, l.Message = o.detail, ""
			}
			_ = enc.Encode(l)
		case "none":
		default:
			// One line per probe, even for an error joined from several.
			fmt.Fprintf(w, "probe %s %s: %s\n", p.Name(), o.status, strings.ReplaceAll(o.detail, "\n", "; "))
		}
	}
	return code
}

// observe checks p as often as it needs, its checks spread evenly over
// opts.window from start. A probe that reads the running host is skipped
// under a foreign root unless opts.liveHost; a failed check ends the probe's
// checks, since a second one started while a timed-out one still runs
// would share its state.
func observe(ctx context.Context, p probe.Probe, penv *probe.Env, start time.Time, opts onceOptions, foreign bool) onceOutcome {
	needs := p.Needs()
	if foreign && needs.LiveHost != "" && !opts.liveHost {
		return onceOutcome{status: probeSkipped, detail: "reads the running host, not --root: " + needs.LiveHost}
	}
	want := max(needs.Checks, 1)
	checks := want
	if opts.window <= 0 {
		checks = 1
	}
	var out onceOutcome
	for i := range checks {
		if i > 0 {
			at := start.Add(opts.window * time.Duration(i) / time.Duration(checks-1))
			if err := sleepUntil(ctx, at); err != nil {
				out.status, out.detail = probeInconclusive, fmt.Sprintf("needs %d checks, stopped after %d: %v", want, i, err)
				return out
			}
		}
		res, err := checkBounded(ctx, p, penv)
		if err != nil {
			out.status, out.detail = probeFailed, err.Error()
			return out
		}
		out.results = res
	}
	switch {
	case checks < want:
		out.status, out.detail = probeInconclusive, fmt.Sprintf("needs %d checks, --once-window=0 allows one", want)
	case needs.Lasting > opts.window:
		out.status, out.detail = probeInconclusive, fmt.Sprintf("reports a state only once it has lasted %v, longer than --once-window (%v)", needs.Lasting, opts.window)
	}
	return out
}

// sleepUntil waits until at or until ctx ends, returning ctx's cause then.
func sleepUntil(ctx context.Context, at time.Time) error {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// checkBounded runs one check under the same time bound as the daemon and
// gives up on a probe stuck in a system call rather than hanging.
func checkBounded(ctx context.Context, p probe.Probe, penv *probe.Env) ([]probe.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, min(p.Period(), onceCheckTimeout))
	defer cancel()
	type out struct {
		res []probe.Result
		err error
	}
	ch := make(chan out, 1)
	go func() {
		res, err := p.Check(ctx, penv)
		ch <- out{res, err}
	}()
	select {
	case o := <-ch:
		return o.res, o.err
	case <-ctx.Done():
		err := ctx.Err()
		if c := context.Cause(ctx); c != nil && !errors.Is(c, err) {
			err = fmt.Errorf("%w: %w", err, c)
		}
		return nil, fmt.Errorf("check did not finish: %w", err)
	}
}
