package daemon

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/reason"
	"github.com/nodehealthd/nodehealthd/internal/source"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// scripted is a detector that runs the steps the test sends it.
type scripted struct{ steps chan func(detector.Emitter) }

func (s *scripted) Name() string { return "scripted" }
func (s *scripted) Run(ctx context.Context, emit detector.Emitter) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case step := <-s.steps:
			step(emit)
		}
	}
}

// kindRules are log rules for TestOverridesApplyToEveryKind.
var kindRules = "rules:\n" + kmsgRule("LogOff", "Warning", "log-off") + kmsgRule("LogSev", "Warning", "log-sev") +
	kmsgRule("LogThr", "Fatal", "log-thr") + kmsgRule("LogExp", "Fatal", "log-exp")

// kindConfig overrides, for each kind of producer (a log rule, a probe, an
// NVML poll, an NVML XID event), one reason's switch, one's severity, one's
// threshold and one's recovery.
const kindConfig = `reasons:
  LogOff: {enabled: false}
  ZramHighUsage: {enabled: false}
  NvidiaPCIeError: {enabled: false}
  NvidiaXID79Error: {enabled: false}

  LogSev: {severity: Fatal}
  ApproachingKernelPidMax: {severity: Fatal}
  NvidiaThermalError: {severity: Fatal}
  NvidiaXID13Warning: {severity: Fatal}

  LogThr: {threshold: {count: 3, window: 1m}}
  InterfaceNotUp: {threshold: {count: 3, window: 1m}}
  NvidiaDoubleBitError: {threshold: {count: 3, window: 1m}}
  NvidiaXID48Error: {threshold: {count: 3, window: 1m}}

  LogExp: {recovery: {expireAfter: 10m}}
  MissingLoopbackInterface: {recovery: {expireAfter: 10m}}
  NvidiaFabricError: {recovery: {expireAfter: 10m}}
  NvidiaXID74Error: {recovery: {expireAfter: 10m}}
`

// TestOverridesApplyToEveryKind: config.yaml's per-reason enabled,
// severity, threshold and recovery apply alike to a log rule's reason, a
// probe's, an NVML poll's and an NVML XID's. Before the policy stage the
// daemon refused thresholds and recovery of probe and NVML reasons and
// ignored them for NVML's XIDs.
func TestOverridesApplyToEveryKind(t *testing.T) {
	h := newHarness(t)
	h.write("rules.d/kinds.yaml", kindRules)
	h.write("config.yaml", kindConfig)
	det := &scripted{steps: make(chan func(detector.Emitter))}
	h.housekeeping = 20 * time.Millisecond
	h.run(func(o *Options) {
		o.NewDetectors = func(SourceContext) []detector.Detector { return []detector.Detector{det} }
	})
	defer h.stop()
	h.waitState(func(*state.State) bool { return true })
	if logs := h.logs.String(); strings.Contains(logs, "invalid rules or config") || strings.Contains(logs, "starting without operator rules or config") {
		t.Fatalf("overrides refused:\n%s", logs)
	}

	now := time.Now()
	t0, long := now.Add(-time.Minute), now.Add(-time.Hour)
	logs := func(at time.Time, msgs ...string) {
		var recs []source.Record
		for _, m := range msgs {
			h.seq++
			recs = append(recs, source.Record{Kind: source.KindKmsg, Message: m, Seq: h.seq, Time: at})
		}
		h.feed.ch <- source.Batch{Source: "kmsg", Records: recs, Position: source.Position{BootID: "boot-1", Seq: h.seq}}
	}
	// raise raises a declared reason as its detector does.
	raise := func(kind string) func(detector.Emitter, string, time.Time) {
		return func(emit detector.Emitter, name string, at time.Time) {
			r, ok := reason.Lookup(name)
			if !ok || !strings.HasPrefix(r.Detector, kind) {
				t.Errorf("%s is not a declared %s reason", name, kind)
				return
			}
			f := r.Result(name, "k").Finding("test", r.Detector, at)
			f.Recovery.Probe = true
			emit.Raise(f)
		}
	}
	probe, nvml := raise("probe:"), raise("nvml")
	xid := func(emit detector.Emitter, n string, at time.Time) {
		emit.Observe(policy.Event{Rules: []string{"NvidiaXIDError", "NvidiaXIDWarning"}, Captures: map[string]string{"xid": n, "pci": "0000:3b:00"},
			Source: "nvml", Time: at})
	}
	recent := func(st *state.State, name string) *finding.Finding {
		for i := range st.Recent {
			if st.Recent[i].Reason == name {
				return &st.Recent[i]
			}
		}
		return nil
	}
	seen := func(names ...string) func(*state.State) bool {
		return func(st *state.State) bool {
			for _, n := range names {
				if recent(st, n) == nil {
					return false
				}
			}
			return true
		}
	}

	// Everything but the third observation of the thresholds, then a mark
	// from each path.
	logs(t0, "log-off", "log-sev", "log-thr")
	logs(t0.Add(20*time.Second), "log-thr")
	logs(long, "log-exp")
	logs(now, "boom mark1")
	det.steps <- func(emit detector.Emitter) {
		for _, at := range []time.Time{t0, t0.Add(20 * time.Second)} {
			probe(emit, "InterfaceNotUp", at)
			nvml(emit, "NvidiaDoubleBitError", at)
			xid(emit, "48", at)
		}
		probe(emit, "ZramHighUsage", now)
		probe(emit, "ApproachingKernelPidMax", now)
		probe(emit, "MissingLoopbackInterface", long)
		nvml(emit, "NvidiaPCIeError", now)
		nvml(emit, "NvidiaThermalError", now)
		nvml(emit, "NvidiaFabricError", long)
		xid(emit, "79", now)
		xid(emit, "13", now)
		xid(emit, "74", long)
		probe(emit, "ClockUnsynchronized", now) // the mark
	}
	st := h.waitState(seen("Boom", "ClockUnsynchronized"))
	for _, off := range []string{"LogOff", "ZramHighUsage", "NvidiaPCIeError", "NvidiaXID79Error"} {
		if f := recent(st, off); f != nil {
			t.Errorf("enabled: false, but recorded %+v", *f)
		}
	}
	for _, fatal := range []string{"LogSev", "ApproachingKernelPidMax", "NvidiaThermalError", "NvidiaXID13Warning"} {
		if f := recent(st, fatal); f == nil || f.Severity != finding.Fatal {
			t.Errorf("severity: Fatal, but %s recorded as %+v", fatal, f)
		}
	}
	thresholds := []string{"LogThr", "InterfaceNotUp", "NvidiaDoubleBitError", "NvidiaXID48Error"}
	for _, th := range thresholds {
		if f := recent(st, th); f != nil {
			t.Errorf("threshold 3 in 1m: recorded %s on its 2nd observation: %+v", th, *f)
		}
	}
	if t.Failed() {
		return
	}

	// The third observation within the minute fires.
	logs(t0.Add(40*time.Second), "log-thr")
	det.steps <- func(emit detector.Emitter) {
		at := t0.Add(40 * time.Second)
		probe(emit, "InterfaceNotUp", at)
		nvml(emit, "NvidiaDoubleBitError", at)
		xid(emit, "48", at)
	}
	st = h.waitState(seen(thresholds...))
	for _, th := range thresholds {
		if f := recent(st, th); f.Count != 1 || !f.Detected.Equal(t0.Add(40*time.Second)) {
			t.Errorf("threshold: %s recorded as %+v, want the third observation", th, *f)
		}
	}

	// recovery.expireAfter: seen an hour ago, so the next housekeeping
	// ends them.
	expiring := []string{"LogExp", "MissingLoopbackInterface", "NvidiaFabricError", "NvidiaXID74Error"}
	st = h.waitState(func(st *state.State) bool {
		n := 0
		for _, c := range st.Cleared {
			if slices.Contains(expiring, c.Finding.Reason) && c.By == "expiry" {
				n++
			}
		}
		return n == len(expiring)
	})
	for _, f := range st.Active {
		if slices.Contains(expiring, f.Reason) {
			t.Errorf("expired finding still active: %+v", f)
		}
	}
}
