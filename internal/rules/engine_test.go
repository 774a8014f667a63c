package rules

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

func mustCompile(t *testing.T, doc string, opts Options) *Set {
	t.Helper()
	f, err := Parse([]byte(doc), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(f, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func kmsg(msg string, at time.Time) *source.Record {
	return &source.Record{Kind: source.KindKmsg, Message: msg, Time: at}
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func TestCompileReportsEveryError(t *testing.T) {
	doc := `
rules:
  - name: A
    condition: NotACondition
    reason: A
    severity: Fatal
    source: kmsg
    patterns: ['a(']
  - name: B
    condition: KernelReady
    reason: B
    severity: Sometimes
    source: journal
    patterns: ['b']
  - name: C
    condition: KernelReady
    reason: C
    severity: Warning
    source: kmsg
    patterns: ['(?P<x>c)']
    message: 'got ${y}'
  - name: C
    condition: KernelReady
    reason: C2
    severity: Warning
    source: file
    paths: [relative.log]
    patterns: ['c']
`
	f, err := Parse([]byte(doc), "bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(f, Options{})
	if err == nil {
		t.Fatal("expected errors")
	}
	msg := err.Error()
	for _, want := range []string{
		`bad.yaml:3: rule "A": condition "NotACondition"`,
		`bad.yaml:3: rule "A": pattern 1: error parsing regexp`,
		`bad.yaml:9: rule "B": unknown severity "Sometimes"`,
		`bad.yaml:9: rule "B": source journal needs identifiers or units`,
		`bad.yaml:15: rule "C": message refers to capture "y"`,
		`rule "C": name already used at bad.yaml:15`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
}

func TestParseRejectsUnknownFields(t *testing.T) {
	_, err := Parse([]byte("rules:\n  - name: A\n    pattern: x\n"), "typo.yaml")
	if err == nil || !strings.Contains(err.Error(), "typo.yaml") || !strings.Contains(err.Error(), "pattern") {
		t.Fatalf("want an unknown-field error naming the file, got %v", err)
	}
}

func TestThresholdWindowAndRestore(t *testing.T) {
	set := mustCompile(t, `
rules:
  - name: Stuck
    condition: ContainerRuntimeReady
    reason: Stuck
    severity: Fatal
    source: kmsg
    patterns: ['stuck pod="(?P<pod>[^"]+)"']
    key: '${pod}'
    message: 'pod ${pod} stuck'
    threshold: {count: 3, window: 10m}
`, Options{})
	e := NewEngine(set)
	feed := func(e *Engine, pod string, at time.Time) []finding.Finding {
		return e.Process(kmsg(`stuck pod="`+pod+`"`, at), nil)
	}
	if len(feed(e, "a", t0)) != 0 || len(feed(e, "b", t0)) != 0 || len(feed(e, "a", t0.Add(time.Minute))) != 0 {
		t.Fatal("fired below threshold")
	}
	// Crash here: the windows are restored into a new engine.
	w, changed := e.Windows()
	if !changed {
		t.Fatal("windows should report a change")
	}
	e2 := NewEngine(set)
	e2.SetWindows(w)
	fs := feed(e2, "a", t0.Add(2*time.Minute))
	if len(fs) != 1 || fs[0].Key != "a" || fs[0].Message != "pod a stuck" {
		t.Fatalf("third match for pod a should fire once, got %+v", fs)
	}
	// Counting restarts after firing; old matches fall out of the window.
	if len(feed(e2, "b", t0.Add(11*time.Minute))) != 0 || len(feed(e2, "b", t0.Add(12*time.Minute))) != 0 {
		t.Fatal("b fired although its first match left the window")
	}
	e2.Expire(t0.Add(time.Hour))
	if w, _ := e2.Windows(); len(w) != 0 {
		t.Fatalf("expired windows kept: %v", w)
	}
}

func TestSetsTemplatesAndOverrides(t *testing.T) {
	doc := `
sets:
  fatal: ["79", "48"]
rules:
  - name: XidFatal
    condition: AcceleratedHardwareReady
    reason: 'NvidiaXID${xid}Error'
    severity: Fatal
    source: kmsg
    patterns: ['NVRM: Xid \(PCI:(?P<pci>[^)]+)\): (?P<xid>\d+),']
    captureIn: {group: xid, set: fatal}
    key: '${pci}/${xid}'
  - name: XidWarning
    condition: AcceleratedHardwareReady
    reason: 'NvidiaXID${xid}Warning'
    severity: Warning
    source: kmsg
    patterns: ['NVRM: Xid \(PCI:(?P<pci>[^)]+)\): (?P<xid>\d+),']
    captureNotIn: {group: xid, set: fatal}
`
	no := false
	set := mustCompile(t, doc, Options{
		Sets:      map[string][]string{"fatal": {"79", "13"}},
		Overrides: map[string]Override{"NvidiaXID31Warning": {Enabled: &no}, "NvidiaXID13Error": {Severity: "Warning"}},
	})
	e := NewEngine(set)
	got := func(line string) []string {
		var out []string
		for _, f := range e.Process(kmsg(line, t0), nil) {
			out = append(out, f.Reason+"/"+string(f.Severity))
		}
		return out
	}
	cases := map[string][]string{
		"NVRM: Xid (PCI:0000:10:1c): 79, pid=0, GPU has fallen off the bus.": {"NvidiaXID79Error/Fatal"},
		"NVRM: Xid (PCI:0000:10:1c): 48, pid=0, DBE":                         {"NvidiaXID48Warning/Warning"}, // config replaced the set
		"NVRM: Xid (PCI:0000:10:1c): 13, pid=1, Graphics Exception":          {"NvidiaXID13Error/Warning"},   // severity override
		"NVRM: Xid (PCI:0000:10:1c): 31, pid=1, MMU Fault":                   nil,                            // disabled
		"NVRM: something else":                                               nil,
	}
	for line, want := range cases {
		if g := got(line); !slices.Equal(g, want) {
			t.Errorf("%s: got %v want %v", line, g, want)
		}
	}
}

func TestOverrideOfUnknownReasonIsAnError(t *testing.T) {
	f, _ := Parse([]byte("rules:\n  - {name: A, condition: KernelReady, reason: A, severity: Warning, source: kmsg, patterns: [a]}\n"), "x.yaml")
	_, err := Compile(f, Options{Overrides: map[string]Override{"SoftLockupp": {}}})
	if err == nil || !strings.Contains(err.Error(), "reasons.SoftLockupp") {
		t.Fatalf("want an error naming the unknown reason, got %v", err)
	}
}

// TestOverrideOfDetectorReasons: reasons that probes and NVML report may be
// switched off or given another severity in config.yaml, templates
// included; threshold and recovery, which only rules honour, are refused
// rather than silently ignored.
func TestOverrideOfDetectorReasons(t *testing.T) {
	f, _ := Parse([]byte("rules:\n  - {name: A, condition: KernelReady, reason: A, severity: Warning, source: kmsg, patterns: [a]}\n"), "x.yaml")
	no := false
	known := []string{"ApproachingKernelPidMax", "${Unit}RepeatedRestart"}
	ok := map[string]Override{
		"ApproachingKernelPidMax": {Enabled: &no},
		"KubeletRepeatedRestart":  {Severity: "Fatal"},
		"A":                       {Recovery: &Recovery{ExpireAfter: Duration(time.Hour)}},
	}
	if _, err := Compile(f, Options{Overrides: ok, KnownReasons: known}); err != nil {
		t.Fatalf("detector overrides refused: %v", err)
	}
	if _, err := Compile(f, Options{Overrides: ok}); err == nil || !strings.Contains(err.Error(), "reasons.ApproachingKernelPidMax") {
		t.Fatalf("without KnownReasons the override must be refused, got %v", err)
	}
	for reason, ov := range map[string]Override{
		"ApproachingKernelPidMax": {Threshold: &Threshold{Count: 2, Window: Duration(time.Minute)}},
		"KubeletRepeatedRestart":  {Recovery: &Recovery{KeepAcrossReboot: true}},
	} {
		_, err := Compile(f, Options{Overrides: map[string]Override{reason: ov}, KnownReasons: known})
		if err == nil || !strings.Contains(err.Error(), "reasons."+reason+": threshold and recovery apply to log rules only") {
			t.Errorf("%s %+v: want a refusal, got %v", reason, ov, err)
		}
	}
	for reason, ov := range map[string]Override{
		"RepeatedRestart":          {Enabled: &no},         // the template needs a unit
		"ApproachingKernelPidMaxx": {Enabled: &no},         // a typo
		"ApproachingKernelPidMax":  {Severity: "Critical"}, // not a severity
	} {
		if _, err := Compile(f, Options{Overrides: map[string]Override{reason: ov}, KnownReasons: known}); err == nil || !strings.Contains(err.Error(), "reasons."+reason) {
			t.Errorf("%s %+v: want an error naming it, got %v", reason, ov, err)
		}
	}
}

func TestDisabledReasonIsNotEvaluated(t *testing.T) {
	no := false
	set := mustCompile(t, "rules:\n  - {name: A, condition: KernelReady, reason: A, severity: Warning, source: kmsg, patterns: [boom]}\n",
		Options{Overrides: map[string]Override{"A": {Enabled: &no}}})
	if len(set.Rules()) != 0 || len(NewEngine(set).Process(kmsg("boom", t0), nil)) != 0 {
		t.Fatal("disabled rule still active")
	}
}

func TestExcludeFanOutAndSourceSelection(t *testing.T) {
	set := mustCompile(t, `
rules:
  - {name: Crash, condition: KernelReady, reason: AppCrash, severity: Warning, source: kmsg, patterns: ['(?P<comm>\S+)\[\d+\]: segfault at'], message: 'Process "${comm}" crashed'}
  - {name: Nccl, condition: AcceleratedHardwareReady, reason: NvidiaNCCLError, severity: Warning, source: kmsg, patterns: ['segfault at.*in libnccl\.so']}
  - {name: Api, condition: NetworkingReady, reason: ApiDown, severity: Fatal, source: file, paths: [/var/log/*.log], patterns: ['Failed to check API server connectivity'], exclude: ['no configuration has been provided']}
  - {name: Kubelet, condition: KernelReady, reason: Fork, severity: Fatal, source: journal, identifiers: [kubelet], patterns: ['fork/exec.*resource temporarily unavailable']}
`, Options{})
	e := NewEngine(set)
	fs := e.Process(kmsg("pt_main_thread[2536443]: segfault at 8 ip 00007f sp 00007f error 4 in libnccl.so.2[7f+1000]", t0), nil)
	if len(fs) != 2 || fs[0].Reason != "AppCrash" || fs[0].Message != `Process "pt_main_thread" crashed` || fs[1].Reason != "NvidiaNCCLError" {
		t.Fatalf("fan-out: %+v", fs)
	}
	file := func(p, m string) *source.Record {
		return &source.Record{Kind: source.KindFile, Path: p, Message: m, Time: t0}
	}
	if n := len(e.Process(file("/var/log/ipamd.log", "Failed to check API server connectivity: timeout"), nil)); n != 1 {
		t.Fatalf("file rule: %d findings", n)
	}
	if n := len(e.Process(file("/var/log/ipamd.log", "Failed to check API server connectivity: invalid configuration: no configuration has been provided"), nil)); n != 0 {
		t.Fatal("exclude ignored")
	}
	if n := len(e.Process(file("/var/log/sub/x.log", "Failed to check API server connectivity"), nil)); n != 0 {
		t.Fatal("path glob matched a file in a subdirectory")
	}
	j := func(id, m string) *source.Record {
		return &source.Record{Kind: source.KindJournal, Identifier: id, Message: m, Time: t0}
	}
	if len(e.Process(j("kubelet", "fork/exec /bin/x: resource temporarily unavailable"), nil)) != 1 || len(e.Process(j("containerd", "fork/exec /bin/x: resource temporarily unavailable"), nil)) != 0 {
		t.Fatal("journal identifier filter wrong")
	}
	in := set.Inputs()
	if !in.Kmsg || !slices.Equal(in.Identifiers, []string{"kubelet"}) || !slices.Equal(in.Paths, []string{"/var/log/*.log"}) {
		t.Fatalf("inputs: %+v", in)
	}
}

func TestMergeReplacesBuiltinByName(t *testing.T) {
	b := &File{Rules: []Rule{{Name: "A", Reason: "A"}, {Name: "B", Reason: "B"}}}
	o := &File{Rules: []Rule{{Name: "B", Reason: "B2"}, {Name: "C", Reason: "C"}}}
	m := Merge(b, o)
	var got []string
	for _, r := range m.Rules {
		got = append(got, r.Name+":"+r.Reason)
	}
	if !slices.Equal(got, []string{"A:A", "B:B2", "C:C"}) {
		t.Fatal(got)
	}
}

func TestRequiredLiterals(t *testing.T) {
	for re, want := range map[string][]string{
		`watchdog: BUG: soft lockup - .* stuck for (.*)!`: {"watchdog: BUG: soft lockup - "},
		`(ip|nf)_conntrack: table full, dropping packet`:  {"_conntrack: table full, dropping packet"},
		`traps:\s*(.*?)\[|\s(.*?)\[\d+]: segfault at.*`:   {"traps:", "]: segfault at"},
		`(?i)error`: nil,
		`.*`:        nil,
		`a?b`:       {"b"},
	} {
		got := ruleLiterals([]*regexp.Regexp{regexp.MustCompile(re)})
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %q want %q", re, got, want)
		}
	}
}

func FuzzParseAndCompile(f *testing.F) {
	f.Add([]byte("rules:\n  - {name: A, condition: KernelReady, reason: A, severity: Warning, source: kmsg, patterns: [a]}\n"))
	f.Add([]byte("sets: {s: [a]}\nrules:\n  - {condition: KernelReady, reason: 'X${1}', severity: Fatal, source: journal, identifiers: [k], patterns: ['(a)'], captureIn: {group: '1', set: s}, threshold: {count: 2, window: 1m}}\n"))
	f.Add([]byte("rules: [}"))
	f.Add([]byte("rules:\n  - threshold: {window: forever}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b, "fuzz.yaml")
		if err != nil {
			return
		}
		set, err := Compile(file, Options{})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		e := NewEngine(set)
		for _, k := range []source.Kind{source.KindKmsg, source.KindJournal, source.KindFile} {
			e.Process(&source.Record{Kind: k, Message: string(b), Identifier: "k", Path: "/x", Time: t0}, nil)
		}
	})
}

// A log line can carry a credential into the finding's message; the
// message must not carry it on to the state file, journal or cluster.
func TestMessagesAreRedacted(t *testing.T) {
	set := mustCompile(t, `
rules:
  - name: PullFailed
    condition: ContainerRuntimeReady
    reason: PullFailed
    severity: Warning
    source: kmsg
    patterns: ['pull failed: (?P<detail>.*)']
    message: 'image pull failed: ${detail}'
`, Options{})
	e := NewEngine(set)
	fs := e.Process(kmsg(`pull failed: GET https://robot:Pa55w0rdCanary@registry.example.com/v2/app failed; token=ghp_0123456789abcdefghijABCDEFGHIJ012345`, t0), nil)
	if len(fs) != 1 {
		t.Fatalf("findings: %+v", fs)
	}
	for _, secret := range []string{"Pa55w0rdCanary", "ghp_0123456789abcdefghij"} {
		if strings.Contains(fs[0].Message, secret) {
			t.Errorf("message carries %q: %s", secret, fs[0].Message)
		}
	}
	if !strings.Contains(fs[0].Message, "registry.example.com/v2/app") {
		t.Errorf("redaction took more than the credential: %s", fs[0].Message)
	}
}

// Sources may reuse a record's memory once it is processed (source.Text):
// a finding must keep nothing of it. And a message seen before, from the
// cache of cleaned messages, is redacted like a new one.
func TestFindingsKeepNoRecordMemory(t *testing.T) {
	set := mustCompile(t, `
rules:
  - name: Whole
    condition: StorageReady
    reason: Whole
    severity: Warning
    source: file
    paths: [/var/log/kern.log]
    patterns: ['Buffer I/O error on (?P<dev>nvme\d+n\d+)']
    key: '${dev}'
`, Options{})
	e := NewEngine(set)
	for _, line := range []string{
		"Buffer I/O error on nvme1n1, logical block 7",
		"Buffer I/O error on nvme1n1, logical block 7", // cached
		"Buffer I/O error on nvme1n1 password=Hunter2Canary",
		"Buffer I/O error on nvme1n1 password=Hunter2Canary", // cached
	} {
		buf := []byte(line)
		rec := &source.Record{Kind: source.KindFile, Path: "/var/log/kern.log", Message: unsafe.String(&buf[0], len(buf)), Time: t0}
		fs := e.Process(rec, nil)
		if len(fs) != 1 {
			t.Fatalf("%q: findings %+v", line, fs)
		}
		want := strings.Clone(fs[0].Message)
		for i := range buf {
			buf[i] = '#' // the source reuses the memory
		}
		if got := fs[0]; got.Message != want || got.Message == "" || got.Key != "nvme1n1" || got.Source != "file:/var/log/kern.log" || strings.Contains(got.Message, "#") {
			t.Fatalf("%q: finding changed with the record's memory: %+v", line, got)
		}
		if strings.Contains(fs[0].Message, "Hunter2Canary") {
			t.Fatalf("%q: message not redacted: %q", line, fs[0].Message)
		}
	}
}
