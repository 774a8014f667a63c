package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// oneShot raises its findings once and then waits, like a probe whose
// first check failed.
type oneShot struct{ findings []finding.Finding }

func (o *oneShot) Name() string { return "probes" }
func (o *oneShot) Run(ctx context.Context, emit detector.Emitter) error {
	for _, f := range o.findings {
		emit.Raise(f)
	}
	<-ctx.Done()
	return nil
}

// startWithDetectors is harness.start with detectors besides the feed.
func (h *harness) startWithDetectors(dets ...detector.Detector) {
	h.t.Helper()
	h.run(func(o *Options) {
		o.NewDetectors = func(SourceContext) []detector.Detector { return dets }
	})
	h.waitState(func(st *state.State) bool { return true })
}

// TestConfigOverridesDetectorReasons: reasons.<R>.enabled and .severity in
// config.yaml apply to probe findings as they do to rule findings,
// templated reasons included.
func TestConfigOverridesDetectorReasons(t *testing.T) {
	h := newHarness(t)
	h.write("config.yaml", `reasons:
  ApproachingKernelPidMax: {severity: Fatal}
  KubeletRepeatedRestart: {severity: Fatal}
  ZramHighUsage: {enabled: false}
  InterfaceNotUp: {severity: Warning}
`)
	now := time.Now()
	raise := func(cond, reason string, sev finding.Severity) finding.Finding {
		return finding.Finding{Condition: cond, Reason: reason, Severity: sev, Message: reason, Source: "probe:test",
			Detected: now, LastSeen: now, Count: 1, Recovery: finding.Recovery{Probe: true}}
	}
	h.startWithDetectors(&oneShot{findings: []finding.Finding{
		raise(finding.KernelReady, "ApproachingKernelPidMax", finding.Warning),
		raise(finding.ContainerRuntimeReady, "KubeletRepeatedRestart", finding.Warning),
		raise(finding.KernelReady, "ZramHighUsage", finding.Warning),
		raise(finding.NetworkingReady, "InterfaceNotUp", finding.Fatal),
		raise(finding.KernelReady, "ClockUnsynchronized", finding.Warning),
	}})
	defer h.stop()
	st := h.waitState(func(st *state.State) bool {
		for _, f := range st.Recent {
			if f.Reason == "ClockUnsynchronized" {
				return true
			}
		}
		return false
	})
	if strings.Contains(h.logs.String(), "invalid rules or config") {
		t.Fatalf("config with detector overrides was refused:\n%s", h.logs.String())
	}
	if got := activeReasons(st); got != "ApproachingKernelPidMax/,KubeletRepeatedRestart/" {
		t.Errorf("active findings %q, want the two raised to Fatal (InterfaceNotUp lowered to Warning, ZramHighUsage off)", got)
	}
	if c := st.Conditions[finding.KernelReady]; c.Status != "False" || c.Reason != "ApproachingKernelPidMax" {
		t.Errorf("KernelReady = %+v, want False with ApproachingKernelPidMax", c)
	}
	if c := st.Conditions[finding.NetworkingReady]; c.Status != "True" {
		t.Errorf("NetworkingReady = %+v, want True: InterfaceNotUp was lowered to a Warning", c)
	}
	for _, f := range st.Recent {
		if f.Reason == "ZramHighUsage" {
			t.Errorf("disabled reason recorded: %+v", f)
		}
		if f.Reason == "InterfaceNotUp" && f.Severity != finding.Warning {
			t.Errorf("InterfaceNotUp recorded as %s, want Warning", f.Severity)
		}
	}
}
