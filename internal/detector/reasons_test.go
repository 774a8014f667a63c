package detector

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// isolate gives a test an empty registry and restores the real one after,
// so that the reasons a test describes do not leak into other tests.
func isolate(t *testing.T) {
	reasonsMu.Lock()
	saved, savedM := described, matchers
	described, matchers = map[string]ReasonInfo{}, map[string]*regexp.Regexp{}
	reasonsMu.Unlock()
	t.Cleanup(func() {
		reasonsMu.Lock()
		described, matchers = saved, savedM
		reasonsMu.Unlock()
	})
}

func info(reason string) ReasonInfo {
	return ReasonInfo{Reason: reason, Condition: finding.KernelReady, Severity: finding.Warning, Detector: "probe:test",
		Period: "5m", Description: "d", Action: "a", Recovery: "r"}
}

func TestDescribeReasonsAndLookup(t *testing.T) {
	isolate(t)
	Describe(info("Zeta"), info("${Unit}RepeatedRestart"), info("Alpha"))
	if got := ReasonNames(); !slices.Equal(got, []string{"${Unit}RepeatedRestart", "Alpha", "Zeta"}) {
		t.Fatalf("ReasonNames = %v, want sorted", got)
	}
	for reason, want := range map[string]string{
		"Alpha":                              "Alpha",
		"KubeletRepeatedRestart":             "${Unit}RepeatedRestart",
		"Nvidia-PersistencedRepeatedRestart": "${Unit}RepeatedRestart",
		"${Unit}RepeatedRestart":             "${Unit}RepeatedRestart",
	} {
		if got, ok := Lookup(reason); !ok || got.Reason != want {
			t.Errorf("Lookup(%s) = %q, %v; want %s", reason, got.Reason, ok, want)
		}
	}
	for _, reason := range []string{"RepeatedRestart", "Alph", "AlphaX", "KubeletRepeatedRestarts"} {
		if got, ok := Lookup(reason); ok {
			t.Errorf("Lookup(%s) found %s", reason, got.Reason)
		}
	}
}

func TestDescribeRejectsBadMetadata(t *testing.T) {
	isolate(t)
	Describe(info("Taken"))
	for name, c := range map[string]struct {
		in   ReasonInfo
		want string
	}{
		"duplicate":       {info("Taken"), "described twice"},
		"condition":       {func() ReasonInfo { i := info("A"); i.Condition = "DiskReady"; return i }(), "condition"},
		"severity":        {func() ReasonInfo { i := info("B"); i.Severity = "fatal"; return i }(), "severity"},
		"reason":          {info("1Bad"), "must start with a letter"},
		"reason chars":    {info("Bad_Reason"), "must start with a letter"},
		"template syntax": {info("$UnitRestart"), "must start with a letter"},
		"detector":        {func() ReasonInfo { i := info("C"); i.Detector = ""; return i }(), "detector"},
		"period":          {func() ReasonInfo { i := info("D"); i.Period = "5"; return i }(), "period"},
		"description":     {func() ReasonInfo { i := info("E"); i.Description = " "; return i }(), "description is empty"},
		"action":          {func() ReasonInfo { i := info("F"); i.Action = ""; return i }(), "action is empty"},
		"recovery":        {func() ReasonInfo { i := info("G"); i.Recovery = ""; return i }(), "recovery is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("Describe(%+v) did not panic", c.in)
				}
				if msg, _ := r.(string); !strings.Contains(msg, c.want) {
					t.Fatalf("panic %q, want it to mention %q", r, c.want)
				}
			}()
			Describe(c.in)
		})
	}
	if got := slices.Collect(maps.Keys(described)); len(got) != 1 {
		t.Fatalf("rejected reasons were registered: %v", got)
	}
}
