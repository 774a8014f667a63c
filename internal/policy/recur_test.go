package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// gpuFatal is what the kmsg XID rule observes for xid on one GPU.
func gpuFatal(reason string, at time.Time) Observation {
	return Observation{Finding: finding.Finding{Condition: finding.AcceleratedHardwareReady, Reason: reason, Severity: finding.Fatal,
		Message: "detected XID", Key: "0000:3b:00/48", Rule: "NvidiaXIDError", Source: "kmsg", Detected: at}}
}

// boot is one daemon run: a stage on boot id with the history the last
// run saved.
func boot(p *Policy, id string, h History) *Stage {
	s := p.Stage(id, nil)
	s.SetHistory(h)
	return s
}

func TestRecurrenceCountsBootsNotRestarts(t *testing.T) {
	p := New(nil)
	s := boot(p, "A", nil)
	f, _ := s.Apply(gpuFatal("R", t0))
	if f.Recurrence != nil {
		t.Fatalf("first boot: %+v", f.Recurrence)
	}
	// Boot B, an hour later: the reboot did not cure it.
	s = boot(p, "B", s.History())
	f, _ = s.Apply(gpuFatal("R", t0.Add(time.Hour)))
	want := finding.Recurrence{Reason: "R", Reboots: 1, Within: DefaultRecurWithin}
	if f.Recurrence == nil || *f.Recurrence != want || f.Reason != "R" {
		t.Fatalf("boot B: %+v", f.Recurrence)
	}
	if !strings.HasSuffix(f.Message, "detected XID (recurred after 1 reboot in 24h)") {
		t.Errorf("message %q", f.Message)
	}
	// Seen again in the same boot, and after a restart within it: still
	// one reboot.
	f, _ = s.Apply(gpuFatal("R", t0.Add(2*time.Hour)))
	s = boot(p, "B", s.History())
	g, _ := s.Apply(gpuFatal("R", t0.Add(3*time.Hour)))
	for i, f := range []finding.Finding{f, g} {
		if f.Recurrence == nil || f.Recurrence.Reboots != 1 {
			t.Errorf("same boot, sighting %d: %+v", i+1, f.Recurrence)
		}
	}
	s = boot(p, "C", s.History())
	f, _ = s.Apply(gpuFatal("R", t0.Add(4*time.Hour)))
	if f.Recurrence == nil || f.Recurrence.Reboots != 2 || !strings.Contains(f.Message, "recurred after 2 reboots in 24h") {
		t.Errorf("boot C: %+v %q", f.Recurrence, f.Message)
	}
	// Boot D, 27h after boot B's sighting, 23h after boot C's: only C
	// is within the window.
	s = boot(p, "D", s.History())
	f, _ = s.Apply(gpuFatal("R", t0.Add(27*time.Hour)))
	if f.Recurrence == nil || f.Recurrence.Reboots != 1 {
		t.Errorf("boot D: %+v", f.Recurrence)
	}
	// Another reason has no history.
	if f, _ := s.Apply(gpuFatal("Other", t0.Add(27*time.Hour))); f.Recurrence != nil {
		t.Errorf("other reason: %+v", f.Recurrence)
	}
}

func TestRecurrenceSkipsWhatRebootsDoNotClear(t *testing.T) {
	p := New(nil)
	s := boot(p, "A", nil)
	kept := gpuFatal("Kept", t0)
	kept.Recovery.KeepAcrossReboot = true
	warn := gpuFatal("Warn", t0)
	warn.Severity = finding.Warning
	s.Apply(kept)
	s.Apply(warn)
	s = boot(p, "B", s.History())
	for _, o := range []Observation{kept, warn} {
		o.Detected = t0.Add(time.Hour)
		if f, _ := s.Apply(o); f.Recurrence != nil {
			t.Errorf("%s: %+v", o.Reason, f.Recurrence)
		}
	}
	if len(s.History()) != 0 {
		t.Errorf("history %v", s.History())
	}
	// Without a history (nodehealthctl test, --once) nothing recurs.
	if f, _ := p.Stage("B", nil).Apply(gpuFatal("R", t0)); f.Recurrence != nil {
		t.Error("a stage without history reported a recurrence")
	}
}

func TestEscalation(t *testing.T) {
	p := New(map[string]Override{
		"R": {Escalate: &Escalation{AfterReboots: 2, Within: Duration(48 * time.Hour), Reason: "Replaced"}},
	})
	s := boot(p, "A", nil)
	s.Apply(gpuFatal("R", t0))
	s = boot(p, "B", s.History())
	f, _ := s.Apply(gpuFatal("R", t0.Add(30*time.Hour)))
	if f.Reason != "R" || f.Recurrence == nil || f.Recurrence.Escalated || f.Recurrence.Within != 48*time.Hour {
		t.Fatalf("one reboot of two: %s %+v", f.Reason, f.Recurrence)
	}
	s = boot(p, "C", s.History())
	f, _ = s.Apply(gpuFatal("R", t0.Add(40*time.Hour)))
	want := finding.Recurrence{Reason: "R", Reboots: 2, Within: 48 * time.Hour, Escalated: true}
	if f.Reason != "Replaced" || f.Recurrence == nil || *f.Recurrence != want {
		t.Fatalf("two reboots: %s %+v", f.Reason, f.Recurrence)
	}
	if !strings.HasSuffix(f.Message, "(R recurred after 2 reboots in 48h, escalated)") {
		t.Errorf("message %q", f.Message)
	}
	// The history stays under the reason detected.
	if h := s.History(); len(h["R"]) != 3 || len(h["Replaced"]) != 0 {
		t.Errorf("history %v", h)
	}
	ev := RecurrenceObservation(f).Finding
	if ev.Reason != ReasonRecurredAfterReboot || ev.Severity != finding.Warning || ev.Condition != finding.AcceleratedHardwareReady ||
		ev.Message != "R (0000:3b:00/48) recurred after 2 reboots in 48h; reported as Replaced from now on" {
		t.Errorf("event %+v", ev)
	}
}

// TestDefaultEscalation: a GPU memory XID that EKS reboots for escalates
// to one it replaces for, without any configuration; an operator can
// switch that off and keep the recurrence reporting.
func TestDefaultEscalation(t *testing.T) {
	for _, c := range []struct {
		name   string
		policy *Policy
		reason string
	}{
		{"nil policy", nil, "NvidiaXID140Error"},
		{"no override", New(map[string]Override{"NvidiaXID48Error": {Severity: "Fatal"}}), "NvidiaXID140Error"},
		{"switched off", New(map[string]Override{"NvidiaXID48Error": {Escalate: &Escalation{}}}), "NvidiaXID48Error"},
	} {
		s := boot(c.policy, "A", nil)
		s.Apply(gpuFatal("NvidiaXID48Error", t0))
		s = boot(c.policy, "B", s.History())
		f, _ := s.Apply(gpuFatal("NvidiaXID48Error", t0.Add(time.Hour)))
		if f.Reason != c.reason || f.Recurrence == nil || f.Recurrence.Reboots != 1 {
			t.Errorf("%s: reason %s, recurrence %+v", c.name, f.Reason, f.Recurrence)
		}
	}
	// XID 79 is replaced for already: no default escalation.
	if e := New(nil).escalation("NvidiaXID79Error"); e.AfterReboots != 0 || time.Duration(e.Within) != DefaultRecurWithin {
		t.Errorf("XID 79: %+v", e)
	}
}

func TestHistoryBounds(t *testing.T) {
	h := History{}
	for i := range MaxBootsPerReason + 3 {
		h.record("R", fmt.Sprint("boot", i), t0.Add(time.Duration(i)*time.Hour), "k")
	}
	if ss := h["R"]; len(ss) != MaxBootsPerReason || ss[0].BootID != "boot3" || ss[len(ss)-1].BootID != fmt.Sprint("boot", MaxBootsPerReason+2) {
		t.Fatalf("per reason: %v", ss)
	}
	for i := range MaxHistoryReasons + 5 {
		h.record(fmt.Sprint("X", i), "b", t0.Add(time.Duration(100+i)*time.Hour), "")
	}
	if len(h) != MaxHistoryReasons {
		t.Fatalf("%d reasons kept", len(h))
	}
	// R and the five oldest others were seen least recently.
	for _, gone := range []string{"R", "X0", "X4"} {
		if _, ok := h[gone]; ok {
			t.Errorf("%s kept", gone)
		}
	}
	if _, ok := h["X5"]; !ok {
		t.Error("X5 dropped")
	}
}

func TestCheckEscalation(t *testing.T) {
	known := fakeProducers{
		"R":          {finding.AcceleratedHardwareReady, finding.Fatal},
		"Replaced":   {finding.AcceleratedHardwareReady, finding.Fatal},
		"Elsewhere":  {finding.KernelReady, finding.Fatal},
		"WarnOnly":   {finding.AcceleratedHardwareReady, finding.Warning},
		"X${n}Error": {finding.AcceleratedHardwareReady, finding.Fatal},
	}
	check := func(ovs map[string]Override) string {
		var msgs []string
		for _, err := range New(ovs).Check(known, func(key string, err error) error { return errors.New(key + ": " + err.Error()) }) {
			msgs = append(msgs, err.Error())
		}
		return strings.Join(msgs, "\n")
	}
	if got := check(map[string]Override{
		"R":        {Escalate: &Escalation{AfterReboots: 1, Within: Duration(time.Hour), Reason: "X140Error"}},
		"X48Error": {Escalate: &Escalation{AfterReboots: 1, Reason: "Replaced"}},
		"Replaced": {Escalate: &Escalation{Within: Duration(72 * time.Hour)}},
	}); got != "" {
		t.Errorf("valid escalations refused:\n%s", got)
	}
	got := check(map[string]Override{
		"R":        {Escalate: &Escalation{AfterReboots: -1, Within: -1}},
		"Replaced": {Escalate: &Escalation{AfterReboots: 1}},
		"X1Error":  {Escalate: &Escalation{AfterReboots: 1, Reason: "Elsewhere"}},
		"X2Error":  {Escalate: &Escalation{AfterReboots: 1, Reason: "Typo"}},
		"X3Error":  {Escalate: &Escalation{AfterReboots: 1, Reason: "X3Error"}},
		"X4Error":  {Escalate: &Escalation{AfterReboots: 1, Reason: "X${n}Error"}},
		"WarnOnly": {Escalate: &Escalation{AfterReboots: 1, Reason: "Replaced"}},
		"X5Error":  {Escalate: &Escalation{AfterReboots: 1, Reason: "WarnOnly"}},
	})
	for _, want := range []string{
		"reasons.R: escalate.afterReboots must not be negative\nescalate.within must not be negative",
		"reasons.Replaced: escalate.reason is missing",
		"reasons.X1Error: escalate.reason Elsewhere belongs to condition KernelReady, not AcceleratedHardwareReady",
		"reasons.X2Error: escalate.reason Typo: no rule, probe or NVML check produces this reason",
		"reasons.X3Error: escalate.reason X3Error is the reason itself",
		`reasons.X4Error: escalate.reason "X${n}Error" is not a reason`,
		"reasons.WarnOnly: escalate applies to Fatal findings, and WarnOnly is a Warning",
		"reasons.X5Error: escalate.reason WarnOnly is a Warning reason",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	// A severity override to Fatal makes a Warning reason escalatable.
	if got := check(map[string]Override{"WarnOnly": {Severity: "Fatal", Escalate: &Escalation{AfterReboots: 1, Reason: "Replaced"}}}); got != "" {
		t.Errorf("Fatal by override refused: %s", got)
	}
}
