// Package probe runs periodic host checks. Each probe lives in its own file,
// registers itself, declares the reasons it may report and reads everything
// under a root prefix, so it is tested against fixture trees of /proc, /sys,
// /etc, /var/log and /run. The framework turns what a probe reports into
// findings and clears them once the probe has passed again on consecutive
// checks (hysteresis), which is the recovery EKS's agent lacks.
package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os/exec"
	"slices"
	"sort"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// Result is one problem a check found, built from the reason's declaration
// (declare): reason.Result(message, key).
type Result = reason.Result

// Probe is one periodic check.
type Probe interface {
	// Name identifies the probe in config (probes.<name>), logs and metrics;
	// the reasons Check may report are declared for detector probe:<name>
	// (declare).
	Name() string
	// Period is how often Check runs.
	Period() time.Duration
	// Check inspects the host once and returns the problems it sees now.
	// An error means the check could not run: nothing is raised or
	// cleared for it. Check must honour ctx, which carries a timeout.
	Check(ctx context.Context, env *Env) ([]Result, error)
	// Needs says what the probe needs beyond one read of files under
	// Env.Root. Every probe states it, next to the settings it follows
	// from, so that a probe added later cannot leave it out.
	Needs() Needs
}

// Needs is what a probe needs beyond one read of files under Env.Root. The
// daemon's periodic checks give a probe whatever observations it needs;
// nodehealthd --once has no earlier checks and may be pointed at a tree
// that is not the running host, so it reads these to know how often to
// check a probe and what it cannot tell. The zero value: one check
// concludes and everything is read under Env.Root.
type Needs struct {
	// Checks is how many successive checks it takes before every reason
	// of the probe can be reported: a counter's first reading is only a
	// baseline, and some states count only when seen on consecutive
	// checks. 0 means 1.
	Checks int
	// Lasting is how long, on the clock, a state must persist before it
	// is reported, for a probe that times it rather than counting checks
	// (the network policy agent being down); 0 when none.
	Lasting time.Duration
	// LiveHost says what the probe reads from the running machine rather
	// than under Env.Root (the kernel clock, routes over netlink, a
	// command run in this process's network namespace), as a noun phrase;
	// empty when it reads only under Env.Root. Under
	// a root other than "/" such a probe would mix the running host's
	// state into the tree's.
	LiveHost string
}

// Env is what probes may use.
type Env struct {
	// Root prefixes every host path.
	Root string
	Log  *slog.Logger
	// Now is the clock (tests replace it).
	Now func() time.Time
	// Tags describe the host: os-release ID ("amzn", "bottlerocket",
	// "ubuntu"), "eks-auto", "hybrid".
	Tags map[string]bool
	// Run executes a host command with a timeout and returns its stdout.
	// Tests replace it; probes must not call exec directly.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Privileged, when set, does the reads the daemon's own sandbox does
	// not allow; nil does them in-process.
	Privileged Privileged
}

// Factory builds a probe from its config section (nil when absent). It
// returns (nil, nil) when the probe does not apply to this host.
type Factory func(env *Env, section *yaml.Node) (Probe, error)

var (
	regMu     sync.Mutex
	factories = map[string]Factory{}
	kinds     = map[string]Kind{}
)

// register adds a probe factory (Register builds it from a declaration).
func register(k Kind, f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := factories[k.Name]; dup {
		panic("probe registered twice: " + k.Name)
	}
	factories[k.Name] = f
	kinds[k.Name] = k
}

// Names lists the registered probes.
func Names() []string {
	regMu.Lock()
	defer regMu.Unlock()
	return namesLocked()
}

// Kinds lists the registered probes' declarations, in name order.
func Kinds() []Kind {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]Kind, 0, len(kinds))
	for _, n := range namesLocked() {
		out = append(out, kinds[n])
	}
	return out
}

// BuildOne instantiates the registered probe name from its section (nil
// for none); nil when it does not apply to this host.
func BuildOne(env *Env, name string, section *yaml.Node) (Probe, error) {
	regMu.Lock()
	f, ok := factories[name]
	regMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("config: probes.%s: no such probe (known: %v)", name, Names())
	}
	return f(env, section)
}

// Build instantiates every registered probe with its section of sections;
// a section naming no registered probe is an error. Every problem is
// reported, in name order, so that one pass of `nodehealthctl rules
// validate` or one reload log shows them all.
func Build(env *Env, sections map[string]yaml.Node) ([]Probe, error) {
	regMu.Lock()
	defer regMu.Unlock()
	var errs []error
	unknown := make([]string, 0, len(sections))
	for name := range sections {
		if _, ok := factories[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		errs = append(errs, fmt.Errorf("config: probes.%s: no such probe (known: %v)", name, namesLocked()))
	}
	var out []Probe
	for _, name := range namesLocked() {
		var sec *yaml.Node
		if s, ok := sections[name]; ok {
			sec = &s
		}
		p, err := factories[name](env, sec)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: probes.%s: %w", name, err))
			continue
		}
		if p != nil {
			out = append(out, p)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func namesLocked() []string { return slices.Sorted(maps.Keys(factories)) }

// A dormantProbe may find nothing on the host to check (no EFA device): the
// runner then checks it less and less often, from its period doubling up
// to maxDormantWait, instead of waking every period for nothing.
type dormantProbe interface {
	Probe
	// Dormant reports that the last check found nothing to check.
	Dormant() bool
}

// maxDormantWait bounds the wait between two checks of a dormant probe.
const maxDormantWait = 10 * time.Minute

// NextWait is the wait after a check of p; asleep counts the checks in a
// row that found p dormant, this one included.
func NextWait(p Probe, asleep *int) time.Duration {
	period := p.Period()
	d, ok := p.(dormantProbe)
	if !ok || !d.Dormant() {
		*asleep = 0
		return period
	}
	*asleep++
	wait := period
	for i := 1; i < *asleep && wait < maxDormantWait; i++ {
		wait *= 2
	}
	return max(period, min(wait, maxDormantWait))
}

// DefaultPasses is how many consecutive passing checks clear a finding.
const DefaultPasses = 2

// Runner runs probes as a detector.Detector.
type Runner struct {
	Env    *Env
	Probes []Probe
	// Passes is the number of consecutive passing checks that clear a
	// finding (default DefaultPasses).
	Passes int
	// Timeout bounds one Check (default: min(Period, 30s)).
	Timeout time.Duration
	// Observe, when set, is told how each check went (for metrics).
	Observe func(probe string, took time.Duration, err error)
	// Seed holds findings still active from before a restart or reload;
	// each probe takes over its own, so they clear once it passes again.
	Seed []finding.Finding
}

// Name implements detector.Detector.
func (r *Runner) Name() string { return "probes" }

// Run implements detector.Detector: every probe runs on its own goroutine,
// so a slow or failing probe never delays another.
func (r *Runner) Run(ctx context.Context, emit detector.Emitter) error {
	var wg sync.WaitGroup
	first := firstRuns(r.Probes, rand.Int64N)
	for i, p := range r.Probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.loop(ctx, p, first[i], emit)
		}()
	}
	wg.Wait()
	return nil
}

// firstRuns says when each probe first runs. The probes of one period are
// spread evenly over the first fifth of it, in name order, so that they
// never run at the same moment (a burst of CPU and I/O on the node) and
// keep their distance from each other afterwards; where they start in
// their slot is random (randN returns a number in [0, n)), so that a fleet
// rebooted together does not probe in lockstep.
func firstRuns(probes []Probe, randN func(n int64) int64) []time.Duration {
	byPeriod := map[time.Duration][]int{}
	for i, p := range probes {
		byPeriod[p.Period()] = append(byPeriod[p.Period()], i)
	}
	out := make([]time.Duration, len(probes))
	for period, idx := range byPeriod {
		sort.Slice(idx, func(a, b int) bool { return probes[idx[a]].Name() < probes[idx[b]].Name() })
		slot := period / 5 / time.Duration(len(idx))
		phase := time.Duration(randN(int64(slot) + 1))
		for k, i := range idx {
			out[i] = phase + time.Duration(k)*slot
		}
	}
	return out
}

func (r *Runner) loop(ctx context.Context, p Probe, first time.Duration, emit detector.Emitter) {
	asleep := 0
	t := time.NewTimer(first)
	defer t.Stop()
	tr := NewTracker(p.Name(), r.passes())
	tr.Adopt(r.Seed)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.checkOnce(ctx, p, tr, emit)
		t.Reset(NextWait(p, &asleep))
	}
}

func (r *Runner) passes() int {
	if r.Passes > 0 {
		return r.Passes
	}
	return DefaultPasses
}

// checkOnce runs one bounded check and applies its results.
func (r *Runner) checkOnce(ctx context.Context, p Probe, tr *Tracker, emit detector.Emitter) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = min(p.Period(), 30*time.Second)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	results, err := runBounded(cctx, func() ([]Result, error) { return p.Check(cctx, r.Env) })
	if r.Observe != nil {
		r.Observe(p.Name(), time.Since(start), err)
	}
	if err != nil {
		r.Env.Log.Warn("probe failed", "probe", p.Name(), "err", err)
		return
	}
	tr.Apply(r.Env.Now(), results, emit)
}

// runBounded returns when f does or ctx ends, whichever is first, so that a
// probe stuck in a system call cannot stall its loop.
func runBounded(ctx context.Context, f func() ([]Result, error)) ([]Result, error) {
	type out struct {
		r   []Result
		err error
	}
	ch := make(chan out, 1)
	go func() {
		r, err := f()
		ch <- out{r, err}
	}()
	select {
	case o := <-ch:
		return o.r, o.err
	case <-ctx.Done():
		return nil, fmt.Errorf("check did not finish: %w", ctx.Err())
	}
}

// Tracker turns successive check results into raises and clears.
type Tracker struct {
	probe  string
	passes int
	// active maps reason/key to consecutive passes seen since it last
	// failed.
	active map[string]*tracked
}

type tracked struct {
	res    Result
	passes int
}

// NewTracker returns a tracker clearing after passes consecutive passes.
func NewTracker(probe string, passes int) *Tracker {
	return &Tracker{probe: probe, passes: passes, active: map[string]*tracked{}}
}

// Adopt takes over the active findings this probe raised before a restart,
// so that passing checks clear them like findings raised in this run.
func (t *Tracker) Adopt(active []finding.Finding) {
	for _, f := range active {
		if f.Source != "probe:"+t.probe {
			continue
		}
		res := Result{Condition: f.Condition, Reason: f.Reason, Severity: f.Severity, Message: f.Message, Key: f.Key}
		t.active[res.Reason+"\x00"+res.Key] = &tracked{res: res}
	}
}

// Apply raises every result (the pipeline merges repeats of an active
// Fatal finding) and clears what has passed often enough.
func (t *Tracker) Apply(now time.Time, results []Result, emit detector.Emitter) {
	seen := map[string]bool{}
	for _, res := range results {
		k := res.Reason + "\x00" + res.Key
		seen[k] = true
		t.active[k] = &tracked{res: res}
		f := res.Finding(t.probe, "probe:"+t.probe, now)
		f.Recovery.Probe = true
		emit.Raise(f)
	}
	for k, tr := range t.active {
		if seen[k] {
			continue
		}
		tr.passes++
		if tr.passes >= t.passes {
			emit.Clear(finding.Clear{Condition: tr.res.Condition, Reason: tr.res.Reason, Key: tr.res.Key, By: "probe:" + t.probe})
			delete(t.active, k)
		}
	}
}

// ExecRunner is the real Env.Run: it runs name with args, killing it when
// ctx ends, and returns stdout (stderr is folded into the error).
func ExecRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
			return out, fmt.Errorf("%s: %w: %s", name, err, firstLine(ee.Stderr))
		}
		return out, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}
