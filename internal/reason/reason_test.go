package reason

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// isolate gives a test an empty registry and restores the real one after,
// so that the reasons a test declares do not leak into other tests.
func isolate(t *testing.T) {
	mu.Lock()
	saved := declared
	declared = map[string]*Reason{}
	mu.Unlock()
	t.Cleanup(func() {
		mu.Lock()
		declared = saved
		mu.Unlock()
	})
}

func decl(name string) Reason {
	return Reason{Name: name, Condition: finding.KernelReady, Severity: finding.Warning, Detector: "probe:test",
		Period: 5 * time.Minute, Description: "d", Action: "a", Recovery: "r"}
}

func names(rs []Reason) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func TestDeclareAndLookup(t *testing.T) {
	isolate(t)
	Declare(decl("Zeta"))
	Declare(decl("${Unit}RepeatedRestart"))
	alpha := Declare(decl("Alpha"))
	if got := names(All()); !slices.Equal(got, []string{"${Unit}RepeatedRestart", "Alpha", "Zeta"}) {
		t.Fatalf("All = %v, want sorted", got)
	}
	if got := Of("probe:test"); len(got) != 3 || len(Of("nvml")) != 0 {
		t.Fatalf("Of = %v", got)
	}
	for reason, want := range map[string]string{
		"Alpha":                              "Alpha",
		"KubeletRepeatedRestart":             "${Unit}RepeatedRestart",
		"Nvidia-PersistencedRepeatedRestart": "${Unit}RepeatedRestart",
		"${Unit}RepeatedRestart":             "${Unit}RepeatedRestart",
	} {
		if got, ok := Lookup(reason); !ok || got.Name != want {
			t.Errorf("Lookup(%s) = %q, %v; want %s", reason, got.Name, ok, want)
		}
		if !Declared().Has(reason) {
			t.Errorf("Declared() lacks %s", reason)
		}
	}
	for _, reason := range []string{"RepeatedRestart", "Alph", "AlphaX", "KubeletRepeatedRestarts"} {
		if got, ok := Lookup(reason); ok {
			t.Errorf("Lookup(%s) found %s", reason, got.Name)
		}
		if Declared().Has(reason) {
			t.Errorf("Declared() has %s", reason)
		}
	}
	res := alpha.Result("m", "k")
	if res != (Result{Condition: finding.KernelReady, Reason: "Alpha", Severity: finding.Warning, Message: "m", Key: "k"}) {
		t.Fatalf("Result = %+v", res)
	}
	at := time.Unix(100, 0)
	f := res.Finding("test", "probe:test", at)
	if f.Reason != "Alpha" || f.Source != "probe:test" || f.Rule != "test" || !f.Detected.Equal(at) || !f.LastSeen.Equal(at) || f.Count != 1 {
		t.Fatalf("Finding = %+v", f)
	}
}

func TestDeclareRejectsBadMetadata(t *testing.T) {
	isolate(t)
	Declare(decl("Taken"))
	for name, c := range map[string]struct {
		in   Reason
		want string
	}{
		"duplicate":       {decl("Taken"), "declared twice"},
		"condition":       {func() Reason { r := decl("A"); r.Condition = "DiskReady"; return r }(), "condition"},
		"severity":        {func() Reason { r := decl("B"); r.Severity = "fatal"; return r }(), "severity"},
		"reason":          {decl("1Bad"), "must start with a letter"},
		"reason chars":    {decl("Bad_Reason"), "must start with a letter"},
		"template syntax": {decl("$UnitRestart"), "must start with a letter"},
		"detector":        {func() Reason { r := decl("C"); r.Detector = ""; return r }(), "detector"},
		"period":          {func() Reason { r := decl("D"); r.Period = -time.Second; return r }(), "period"},
		"description":     {func() Reason { r := decl("E"); r.Description = " "; return r }(), "description is empty"},
		"action":          {func() Reason { r := decl("F"); r.Action = ""; return r }(), "action is empty"},
		"recovery":        {func() Reason { r := decl("G"); r.Recovery = ""; return r }(), "recovery is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("Declare(%+v) did not panic", c.in)
				}
				if msg, _ := r.(string); !strings.Contains(msg, c.want) {
					t.Fatalf("panic %q, want it to mention %q", r, c.want)
				}
			}()
			Declare(c.in)
		})
	}
	if got := slices.Collect(maps.Keys(declared)); len(got) != 1 {
		t.Fatalf("rejected reasons were registered: %v", got)
	}
}

func TestTemplates(t *testing.T) {
	if got := Refs("NvidiaXID${xid}Error-$1-$$x"); !slices.Equal(got, []string{"xid", "1"}) {
		t.Errorf("Refs = %q", got)
	}
	if got := Fill("NvidiaXID${xid}Error", "X"); got != "NvidiaXIDXError" || !Plain(got) {
		t.Errorf("Fill = %q", got)
	}
	caps := map[string]string{"xid": "79", "pci": "0000:3b:00"}
	if got := Expand("${pci}/$xid-$$-${missing}", func(n string) string { return caps[n] }); got != "0000:3b:00/79-$-" {
		t.Errorf("Expand = %q", got)
	}
	m := Matcher("NvidiaXID${xid}Error")
	if !m.MatchString("NvidiaXID79Error") || m.MatchString("NvidiaXIDError") || m.MatchString("NvidiaXID79Errors") {
		t.Errorf("Matcher %v", m)
	}
	var s Set
	s.Add("A")
	s.Add("${Unit}RepeatedRestart")
	if !s.Has("A") || !s.Has("KubeletRepeatedRestart") || s.Has("B") || s.Has("RepeatedRestart") {
		t.Errorf("Set %+v", s)
	}
}
