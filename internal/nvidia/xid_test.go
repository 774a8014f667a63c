package nvidia

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/rules"
	"github.com/nodehealthd/nodehealthd/internal/source"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

func TestPCIKey(t *testing.T) {
	for _, c := range []struct {
		info nvml.PciInfo
		want string
	}{
		{nvml.PciInfo{Domain: 0, Bus: 0x3b, Device: 0}, "0000:3b:00"},
		{nvml.PciInfo{Domain: 0, Bus: 0x10, Device: 0x1c}, "0000:10:1c"},
		{nvml.PciInfo{Domain: 1, Bus: 0xAB, Device: 0x1F}, "0001:ab:1f"},
	} {
		if got := PCIKey(c.info); got != c.want {
			t.Errorf("PCIKey(%+v) = %q, want %q", c.info, got, c.want)
		}
	}
}

// compiled is the built-in catalogue compiled with cfg, as the daemon
// compiles it.
func compiled(t *testing.T, cfg *config.Config) *rules.Set {
	t.Helper()
	f, err := rules.Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(f, cfg.RuleOptions())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// kmsgFinding is what the built-in kmsg rule and the policy make of an NVRM
// line.
func kmsgFinding(t *testing.T, set *rules.Set, line string, at time.Time) (finding.Finding, bool) {
	t.Helper()
	rec := source.Record{Kind: source.KindKmsg, Message: line, Time: at}
	out := rules.NewEngine(set).Process(&rec, nil)
	if len(out) != 1 {
		t.Fatalf("kmsg rules made %d observations of %q: %+v", len(out), line, out)
	}
	return set.Policy().Stage("boot", nil).Apply(out[0])
}

// nvmlFinding is what the same rules and policy make of NVML's event for
// xid on the GPU at pci, as the daemon makes it.
func nvmlFinding(t *testing.T, set *rules.Set, xid uint64, pci string, at time.Time) (finding.Finding, bool) {
	t.Helper()
	o, ok, err := set.Instantiate(xidEvent(xid, pci, at))
	if err != nil || !ok {
		t.Fatalf("XID %d: instantiated %v, %v", xid, ok, err)
	}
	return set.Policy().Stage("boot", nil).Apply(o)
}

// TestXIDFindingMatchesKmsgRule is the de-duplication contract: for the
// same XID on the same GPU, NVML's finding has the kmsg rule's identity
// (condition, reason, key), severity, message and recovery, config.yaml's
// sets and overrides included.
func TestXIDFindingMatchesKmsgRule(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	info := nvml.PciInfo{Domain: 0, Bus: 0x3b, Device: 0}
	for _, c := range []struct {
		name string
		cfg  *config.Config
		xid  uint64
		line string
		want finding.Severity
	}{
		{"fatal XID", &config.Config{}, 79, "NVRM: Xid (PCI:0000:3b:00): 79, pid=0, GPU has fallen off the bus.", finding.Fatal},
		{"application XID", &config.Config{}, 13, "NVRM: Xid (PCI:0000:3b:00): 13, pid='<unknown>', name=<unknown>, Graphics Exception: ESR 0x50e730=0x107000e", finding.Warning},
		{"old format without PCI:", &config.Config{}, 31, "NVRM: Xid (0000:3b:00): 31, pid=2201, name=python3, Ch 00000008", finding.Warning},
		// NVML reports a MIG instance's XID on the parent GPU; the kmsg key must be that GPU's too.
		{"MIG-attributed fatal XID", &config.Config{}, 48, "NVRM: Xid (PCI:0000:3b:00 GPU-I:01 GPU-CI:00): 48, pid=2201, name=python3, An uncorrectable double bit error (DBE) has been detected", finding.Fatal},
		{"MIG-attributed application XID", &config.Config{}, 94, "NVRM: Xid (PCI:0000:3b:00 GPU-I:05): 94, pid=7194, Contained: CE User Channel (0x9). RST: No, D-RST: No", finding.Warning},
		{"fatal set from config", &config.Config{Sets: map[string][]string{"nvidiaFatalXIDs": {"13"}}}, 13, "NVRM: Xid (PCI:0000:3b:00): 13, pid=1, Graphics Exception", finding.Fatal},
		{"not fatal once removed from the set", &config.Config{Sets: map[string][]string{"nvidiaFatalXIDs": {"13"}}}, 79, "NVRM: Xid (PCI:0000:3b:00): 79, pid=0, GPU has fallen off the bus.", finding.Warning},
		{"severity override of a template reason", &config.Config{Reasons: map[string]policy.Override{"NvidiaXID48Error": {Severity: "Warning", Recovery: &policy.Recovery{ExpireAfter: policy.Duration(time.Hour)}}}}, 48, "NVRM: Xid (PCI:0000:3b:00): 48, pid=2201, name=python3, An uncorrectable double bit error (DBE) has been detected", finding.Warning},
	} {
		t.Run(c.name, func(t *testing.T) {
			set := compiled(t, c.cfg)
			want, _ := kmsgFinding(t, set, c.line, at)
			got, ok := nvmlFinding(t, set, c.xid, PCIKey(info), at)
			if !ok {
				t.Fatal("disabled")
			}
			if got.Condition != want.Condition || got.Reason != want.Reason || got.Key != want.Key ||
				got.Severity != want.Severity || got.Message != want.Message || got.Recovery != want.Recovery {
				t.Fatalf("NVML finding differs from the kmsg rule's\n nvml: %+v\n kmsg: %+v", got, want)
			}
			if got.Severity != c.want {
				t.Fatalf("severity %s, want %s", got.Severity, c.want)
			}
			if got.Source == want.Source {
				t.Fatalf("same source %q: the pipeline would not merge a Warning seen twice", got.Source)
			}
		})
	}
}

func TestXIDDisabledByConfig(t *testing.T) {
	off := false
	set := compiled(t, &config.Config{Reasons: map[string]policy.Override{"NvidiaXID79Error": {Enabled: &off}}})
	if _, ok := nvmlFinding(t, set, 79, "0000:3b:00", time.Now()); ok {
		t.Fatal("a disabled XID reason still produced a finding")
	}
	if _, ok := nvmlFinding(t, set, 48, "0000:3b:00", time.Now()); !ok {
		t.Fatal("disabling XID 79 disabled XID 48")
	}
}

// TestXIDFollowsOperatorRules: XIDs are classified by the rules the daemon
// runs, the operator's set replacing the built-in one and config's both.
func TestXIDFollowsOperatorRules(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "xids.yaml"), []byte("sets:\n  nvidiaFatalXIDs: [\"31\"]\nrules: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	builtin, err := rules.Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	op, err := rules.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	severities := func(cfg *config.Config) (sev31, sev79 finding.Severity) {
		set, err := rules.Compile(rules.Merge(builtin, op), cfg.RuleOptions())
		if err != nil {
			t.Fatal(err)
		}
		f31, _ := nvmlFinding(t, set, 31, "0000:3b:00", time.Now())
		f79, _ := nvmlFinding(t, set, 79, "0000:3b:00", time.Now())
		return f31.Severity, f79.Severity
	}
	if s31, s79 := severities(&config.Config{}); s31 != finding.Fatal || s79 != finding.Warning {
		t.Fatalf("operator set {31}: XID 31 %s, XID 79 %s", s31, s79)
	}
	if s31, s79 := severities(&config.Config{Sets: map[string][]string{"nvidiaFatalXIDs": {"79"}}}); s31 != finding.Warning || s79 != finding.Fatal {
		t.Fatalf("config set {79}: XID 31 %s, XID 79 %s", s31, s79)
	}
}

// TestXIDSeenTwiceIsOneFinding runs both sightings through the real state:
// one active Fatal finding, one Warning with a count of 2.
func TestXIDSeenTwiceIsOneFinding(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	set := compiled(t, &config.Config{})
	st := state.New("boot", at)
	var ch state.Changes
	for _, c := range []struct {
		xid  uint64
		line string
	}{
		{79, "NVRM: Xid (PCI:0000:3b:00): 79, pid=0, GPU has fallen off the bus."},
		{13, "NVRM: Xid (PCI:0000:3b:00): 13, pid=1, Graphics Exception"},
	} {
		nv, _ := nvmlFinding(t, set, c.xid, "0000:3b:00", at.Add(2*time.Second))
		st.Raise(nv, false, &ch)
		km, _ := kmsgFinding(t, set, c.line, at)
		st.Raise(km, false, &ch)
	}
	if len(st.Active) != 1 || st.Active[0].Reason != "NvidiaXID79Error" || st.Active[0].Count != 2 {
		t.Fatalf("active %+v, want one NvidiaXID79Error seen twice", st.Active)
	}
	var warnings []finding.Finding
	for _, f := range st.Recent {
		if f.Severity == finding.Warning {
			warnings = append(warnings, f)
		}
	}
	if len(warnings) != 1 || warnings[0].Reason != "NvidiaXID13Warning" || warnings[0].Count != 2 {
		t.Fatalf("warnings %+v, want one NvidiaXID13Warning seen twice", warnings)
	}
	if len(ch.New) != 2 {
		t.Fatalf("%d new findings published, want 2", len(ch.New))
	}
}

func TestXIDEventsThroughRun(t *testing.T) {
	f := newFakeNVML(t, 2)
	o := f.options()
	o.Interval = time.Hour
	d := New(o)
	rec := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, rec) }()

	f.events <- nvml.EventData{Device: f.gpus[1].dev, EventType: nvml.EventTypeXidCriticalError, EventData: 79}
	f.events <- nvml.EventData{Device: f.gpus[0].dev, EventType: nvml.EventTypeDoubleBitEccError, EventData: 0}
	f.events <- nvml.EventData{Device: f.gpus[0].dev, EventType: nvml.EventTypeXidCriticalError, EventData: 31}
	deadline := time.Now().Add(5 * time.Second)
	for len(only(rec.raised(), "NvidiaXID31Warning")) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	fatal := only(rec.raised(), "NvidiaXID79Error")
	if len(fatal) != 1 || fatal[0].Key != "0000:11:00/79" || fatal[0].Severity != finding.Fatal || fatal[0].Source != Source || fatal[0].Recovery.Probe {
		t.Fatalf("XID 79: %+v", fatal)
	}
	warn := only(rec.raised(), "NvidiaXID31Warning")
	if len(warn) != 1 || warn[0].Key != "0000:10:00/31" || warn[0].Severity != finding.Warning {
		t.Fatalf("XID 31: %+v", warn)
	}
	for _, r := range rec.raised() {
		if r.Reason == "NvidiaXID0Warning" {
			t.Fatalf("a non-XID event became a finding: %+v", r)
		}
	}
	for _, g := range f.gpus {
		calls := g.dev.RegisterEventsCalls()
		if len(calls) != 1 || calls[0].V&nvml.EventTypeXidCriticalError == 0 {
			t.Fatalf("RegisterEvents calls %+v", calls)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.shutdown != 1 {
		t.Fatalf("nvmlShutdown called %d times at the end of Run, want 1", f.shutdown)
	}
}
