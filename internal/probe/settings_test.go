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

type testSettings struct {
	Threshold float64       `yaml:"threshold"`
	Window    time.Duration `yaml:"window"`
}

func (s testSettings) Validate() error {
	return Positive(map[string]time.Duration{"window": s.Window})
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

// Counts are held to the same rule as durations, and every key at fault
// is named, not only the first.
func TestPositiveNamesEveryKeyAtFault(t *testing.T) {
	err := Positive(map[string]int{"threshold": 0, "consecutive": -1, "window": 3})
	if err == nil {
		t.Fatal("no error for a zero and a negative count")
	}
	for _, w := range []string{"threshold 0: want more than 0", "consecutive -1: want more than 0"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "window") {
		t.Errorf("a positive count is named:\n%v", err)
	}
	if err := Positive(map[string]uint64{"thresholdTicks": 1}); err != nil {
		t.Errorf("1 refused: %v", err)
	}
}
