package probe

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func sectionNode(t *testing.T, s string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(s), &n); err != nil {
		t.Fatal(err)
	}
	return n.Content[0]
}

// Every probe reads period alike: 0 means its default, as absent does (the
// network probes did so, the others refused 0s), and below MinPeriod is
// refused (the network probes took 1ms).
func TestEveryProbeReadsPeriodAlike(t *testing.T) {
	env := &Env{Root: t.TempDir(), Log: discard(), Now: time.Now, Tags: map[string]bool{}}
	for _, k := range Kinds() {
		factory := factories[k.Name]
		p, err := factory(env, sectionNode(t, "period: 0s"))
		if err != nil {
			t.Errorf("%s period 0s: %v", k.Name, err)
		} else if p != nil && p.Period() != k.Period {
			t.Errorf("%s period 0s: runs every %v, want its default %v", k.Name, p.Period(), k.Period)
		}
		for _, bad := range []string{"1ms", "-1m"} {
			_, err := factory(env, sectionNode(t, "period: "+bad))
			if err == nil || !strings.Contains(err.Error(), "period "+bad) || !strings.Contains(err.Error(), "at least 1s") {
				t.Errorf("%s period %s: want an error about the period, got %v", k.Name, bad, err)
			}
		}
		p, err = factory(env, sectionNode(t, "period: 2m"))
		if err != nil || (p != nil && p.Period() != 2*time.Minute) {
			t.Errorf("%s period 2m: got %v, %v", k.Name, p, err)
		}
	}
}

type testSettings struct {
	Threshold float64       `yaml:"threshold"`
	Window    time.Duration `yaml:"window"`
}

func (s testSettings) Validate() error {
	return PositiveDurations(map[string]time.Duration{"window": s.Window})
}

// A section's problems are reported together, each on its own line and
// without Go type names, and a section switched off is still checked.
func TestSectionErrorsListEveryProblem(t *testing.T) {
	k := Kind{Name: "test", Period: time.Minute}
	defaults := testSettings{Threshold: 0.5, Window: time.Hour}
	for _, c := range []struct {
		section string
		want    []string
	}{
		{"threshold: high\nperiod: 10ms\nwindow: 0s\ntypo: 1\nenabled: false", []string{
			"cannot unmarshal !!str `high` into float64", "field typo not found", "known keys: enabled, period, threshold, window",
			"period 10ms: want at least 1s", "window 0s: want more than 0"}},
		{"period: soon", []string{"soon", "time.Duration"}},
		{"enabled: maybe", []string{"maybe"}},
	} {
		_, _, _, err := decodeSection(k, defaults, sectionNode(t, c.section))
		if err == nil {
			t.Errorf("%q: no error", c.section)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error lacks %q:\n%v", c.section, w, err)
			}
		}
		if strings.Contains(err.Error(), "in type") {
			t.Errorf("%q: error names a Go type:\n%v", c.section, err)
		}
	}
	s, b, on, err := decodeSection(k, defaults, nil)
	if err != nil || !on || s != defaults || b.Period() != time.Minute || b.Name() != "test" {
		t.Fatalf("absent section: %+v %+v %v %v", s, b, on, err)
	}
	s, b, on, err = decodeSection(k, defaults, sectionNode(t, "enabled: false\nthreshold: 0.9\nperiod: 0s"))
	if err != nil || on || s.Threshold != 0.9 || s.Window != time.Hour || b.Period() != time.Minute {
		t.Fatalf("switched off: %+v %+v %v %v", s, b, on, err)
	}
}
