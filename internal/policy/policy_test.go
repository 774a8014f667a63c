package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// probeObservation is what a probe raises for reason at.
func probeObservation(reason string, at time.Time) Observation {
	return Observation{Finding: finding.Finding{Condition: finding.KernelReady, Reason: reason, Severity: finding.Warning,
		Message: reason, Key: "k", Rule: "p", Source: "probe:p", Detected: at, LastSeen: at, Count: 1,
		Recovery: finding.Recovery{Probe: true}}}
}

func TestApplyOverrides(t *testing.T) {
	no := false
	p := New(map[string]Override{
		"Off":    {Enabled: &no},
		"Loud":   {Severity: "Fatal"},
		"Thrice": {Threshold: &Threshold{Count: 3, Window: Duration(time.Minute)}},
		"Expire": {Recovery: &Recovery{ExpireAfter: Duration(10 * time.Minute), KeepAcrossReboot: true}},
	})
	s := p.Stage("boot-1", nil)
	if _, ok := s.Apply(probeObservation("Off", t0)); ok {
		t.Error("a disabled reason was recorded")
	}
	if f, ok := s.Apply(probeObservation("Loud", t0)); !ok || f.Severity != finding.Fatal {
		t.Errorf("severity override: %+v %v", f, ok)
	}
	f, ok := s.Apply(probeObservation("Expire", t0))
	if want := (finding.Recovery{ExpireAfter: 10 * time.Minute, KeepAcrossReboot: true, Probe: true}); !ok || f.Recovery != want {
		t.Errorf("recovery override: %+v, want %+v (the probe still clears it)", f.Recovery, want)
	}
	if f, ok := s.Apply(probeObservation("Other", t0)); !ok || f.Severity != finding.Warning || f.BootID != "boot-1" || f.Recovery != (finding.Recovery{Probe: true}) {
		t.Errorf("no override: %+v %v", f, ok)
	}
	// The third observation within the window fires; one outside it does
	// not count; firing starts the count again.
	for i, c := range []struct {
		at   time.Duration
		fire bool
	}{{0, false}, {90 * time.Second, false}, {100 * time.Second, false}, {110 * time.Second, true}, {120 * time.Second, false}} {
		if _, ok := s.Apply(probeObservation("Thrice", t0.Add(c.at))); ok != c.fire {
			t.Errorf("observation %d at +%v: fired %v, want %v", i+1, c.at, ok, c.fire)
		}
	}
}

// TestApplyThresholdOverridesTheRules: an override's threshold replaces
// the one the producer brings (a rule's threshold:), and the windows
// survive a restart through the state file.
func TestApplyThresholdOverridesTheRules(t *testing.T) {
	o := probeObservation("R", t0)
	o.Threshold = Threshold{Count: 2, Window: Duration(time.Minute)}
	s := New(nil).Stage("", nil)
	if _, ok := s.Apply(o); ok {
		t.Fatal("the producer's threshold of 2 fired on the first observation")
	}
	w, changed := s.Windows()
	if !changed || len(w) != 1 {
		t.Fatalf("windows %v changed %v", w, changed)
	}
	if _, ok := New(nil).Stage("", w).Apply(o); !ok {
		t.Fatal("the restored window lost the first observation")
	}
	one := New(map[string]Override{"R": {Threshold: &Threshold{Count: 1}}}).Stage("", nil)
	if _, ok := one.Apply(o); !ok {
		t.Fatal("an override's threshold of 1 did not replace the producer's")
	}
	s.Expire(t0.Add(time.Hour))
	if w, _ := s.Windows(); len(w) != 0 {
		t.Fatalf("expired windows kept: %v", w)
	}
}

// TestApplyCleans: messages are redacted and bounded, keys bounded, and
// the defaults a detector leaves out are filled in, whatever produced the
// observation.
func TestApplyCleans(t *testing.T) {
	s := (*Policy)(nil).Stage("boot-1", nil)
	now := time.Now()
	f, ok := s.Apply(Observation{Finding: finding.Finding{Reason: "R", Severity: finding.Warning,
		Message: "GET https://robot:Pa55w0rdCanary@registry.example.com/v2 " + strings.Repeat("x", 2*finding.MaxMessageBytes),
		Key:     strings.Repeat("k", 1000)}})
	if !ok {
		t.Fatal("dropped")
	}
	if strings.Contains(f.Message, "Pa55w0rdCanary") || len(f.Message) > finding.MaxMessageBytes || len(f.Key) > maxKeyBytes {
		t.Errorf("not cleaned: message %d bytes %q, key %d bytes", len(f.Message), f.Message[:80], len(f.Key))
	}
	if f.Detected.Before(now) || !f.LastSeen.Equal(f.Detected) || f.Count != 1 || f.BootID != "boot-1" {
		t.Errorf("defaults: %+v", f)
	}
}

// fakeProducers maps reasons and reason templates to what produces them.
type fakeProducers map[string]Produced

func (f fakeProducers) Produced(name string) (Produced, bool) {
	for r, p := range f {
		if r == name || (len(reason.Refs(r)) > 0 && reason.Matcher(r).MatchString(name)) {
			return p, true
		}
	}
	return Produced{}, false
}

func TestCheck(t *testing.T) {
	known := fakeProducers{"A": {finding.KernelReady, finding.Warning}, "${Unit}RepeatedRestart": {finding.KernelReady, finding.Warning}}
	no := false
	p := New(map[string]Override{
		"A":                      {Enabled: &no, Threshold: &Threshold{Count: 2, Window: Duration(time.Minute)}, Recovery: &Recovery{ExpireAfter: Duration(time.Hour)}},
		"KubeletRepeatedRestart": {Severity: "Fatal"},
		"Typo":                   {},
		"RepeatedRestart":        {},
	})
	var keys []string
	errs := p.Check(known, func(key string, err error) error {
		keys = append(keys, key)
		return errors.New(key + ": " + err.Error())
	})
	if strings.Join(keys, ",") != "reasons.RepeatedRestart,reasons.Typo" || !strings.Contains(errs[0].Error(), "no rule, probe or NVML check produces this reason") {
		t.Errorf("keys %v errors %v", keys, errs)
	}
	for name, ov := range map[string]Override{
		"severity":    {Severity: "Critical"},
		"count":       {Threshold: &Threshold{Count: 0}},
		"window":      {Threshold: &Threshold{Count: 2}},
		"expireAfter": {Recovery: &Recovery{ExpireAfter: -1}},
	} {
		if errs := New(map[string]Override{"A": ov}).Check(known, func(_ string, err error) error { return err }); len(errs) != 1 || !strings.Contains(errs[0].Error(), name) {
			t.Errorf("%s: %v", name, errs)
		}
	}
}

func TestEnabledAndEffective(t *testing.T) {
	no, yes := false, true
	p := New(map[string]Override{"Off": {Enabled: &no}, "On": {Enabled: &yes, Severity: "Fatal", Threshold: &Threshold{Count: 3}}})
	if p.Enabled("Off") || !p.Enabled("On") || !p.Enabled("Other") || !(*Policy)(nil).Enabled("Off") {
		t.Error("Enabled")
	}
	if sev, th := p.Effective("On", finding.Warning, Threshold{}); sev != finding.Fatal || th.Count != 3 {
		t.Errorf("Effective = %s %+v", sev, th)
	}
	if sev, th := p.Effective("Other", finding.Warning, Threshold{Count: 2}); sev != finding.Warning || th.Count != 2 {
		t.Errorf("Effective = %s %+v", sev, th)
	}
}
