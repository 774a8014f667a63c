package rules

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/reason"
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

// pipeline is the daemon's path for records: the engine's observations go
// through the policy stage.
type pipeline struct {
	e *Engine
	s *policy.Stage
}

func newPipeline(set *Set) *pipeline {
	return &pipeline{NewEngine(set), set.Policy().Stage("boot", nil)}
}

func (p *pipeline) Process(rec *source.Record) []finding.Finding {
	var out []finding.Finding
	for _, o := range p.e.Process(rec, nil) {
		if f, ok := p.s.Apply(o); ok {
			out = append(out, f)
		}
	}
	return out
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
    exclude: ['ok', 'c[']
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
		`bad.yaml:15: rule "C": exclude 2: error parsing regexp`,
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
	p := newPipeline(set)
	feed := func(p *pipeline, pod string, at time.Time) []finding.Finding {
		return p.Process(kmsg(`stuck pod="`+pod+`"`, at))
	}
	if len(feed(p, "a", t0)) != 0 || len(feed(p, "b", t0)) != 0 || len(feed(p, "a", t0.Add(time.Minute))) != 0 {
		t.Fatal("fired below threshold")
	}
	// Crash here: the windows are restored into a new stage.
	w, changed := p.s.Windows()
	if !changed {
		t.Fatal("windows should report a change")
	}
	p2 := &pipeline{NewEngine(set), set.Policy().Stage("boot", w)}
	fs := feed(p2, "a", t0.Add(2*time.Minute))
	if len(fs) != 1 || fs[0].Key != "a" || fs[0].Message != "pod a stuck" {
		t.Fatalf("third match for pod a should fire once, got %+v", fs)
	}
	// Counting restarts after firing; old matches fall out of the window.
	if len(feed(p2, "b", t0.Add(11*time.Minute))) != 0 || len(feed(p2, "b", t0.Add(12*time.Minute))) != 0 {
		t.Fatal("b fired although its first match left the window")
	}
	p2.s.Expire(t0.Add(time.Hour))
	if w, _ := p2.s.Windows(); len(w) != 0 {
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
		Sets:   map[string][]string{"fatal": {"79", "13"}},
		Policy: policy.New(map[string]policy.Override{"NvidiaXID31Warning": {Enabled: &no}, "NvidiaXID13Error": {Severity: "Warning"}}),
	})
	p := newPipeline(set)
	got := func(line string) []string {
		var out []string
		for _, f := range p.Process(kmsg(line, t0)) {
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
	_, err := Compile(f, Options{Policy: policy.New(map[string]policy.Override{"SoftLockupp": {}})})
	if err == nil || !strings.Contains(err.Error(), "reasons.SoftLockupp") {
		t.Fatalf("want an error naming the unknown reason, got %v", err)
	}
}

// Declared detector reasons, as a probe package declares them.
var (
	_ = reason.Declare(reason.Reason{Name: "ApproachingKernelPidMax", Condition: finding.KernelReady, Severity: finding.Warning,
		Detector: "probe:pid-max", Period: 5 * time.Minute, Description: "d", Action: "a", Recovery: "r"})
	_ = reason.Declare(reason.Reason{Name: "${Unit}RepeatedRestart", Condition: finding.ContainerRuntimeReady, Severity: finding.Warning,
		Detector: "probe:repeated-restart", Period: 5 * time.Minute, Description: "d", Action: "a", Recovery: "r"})
)

// TestOverrideOfDetectorReasons: reasons that probes and NVML declare may
// be overridden in config.yaml like rule reasons, templates included, with
// every setting (the policy stage applies them all); a reason nothing
// produces or a bad value is refused, naming the key.
func TestOverrideOfDetectorReasons(t *testing.T) {
	f, _ := Parse([]byte("rules:\n  - {name: A, condition: KernelReady, reason: A, severity: Warning, source: kmsg, patterns: [a]}\n"), "x.yaml")
	no := false
	ok := map[string]policy.Override{
		"ApproachingKernelPidMax": {Enabled: &no, Threshold: &policy.Threshold{Count: 2, Window: policy.Duration(time.Minute)}},
		"KubeletRepeatedRestart":  {Severity: "Fatal", Recovery: &policy.Recovery{KeepAcrossReboot: true}},
		"A":                       {Recovery: &policy.Recovery{ExpireAfter: policy.Duration(time.Hour)}},
	}
	if _, err := Compile(f, Options{Policy: policy.New(ok)}); err != nil {
		t.Fatalf("detector overrides refused: %v", err)
	}
	for name, ov := range map[string]policy.Override{
		"RepeatedRestart":          {Enabled: &no},         // the template needs a unit
		"ApproachingKernelPidMaxx": {Enabled: &no},         // a typo
		"ApproachingKernelPidMax":  {Severity: "Critical"}, // not a severity
		"KubeletRepeatedRestart":   {Threshold: &policy.Threshold{Count: 0}},
		"A":                        {Recovery: &policy.Recovery{ExpireAfter: -1}},
	} {
		if _, err := Compile(f, Options{Policy: policy.New(map[string]policy.Override{name: ov})}); err == nil || !strings.Contains(err.Error(), "reasons."+name) {
			t.Errorf("%s %+v: want an error naming it, got %v", name, ov, err)
		}
	}
}

func TestDisabledReasonIsNotEvaluated(t *testing.T) {
	no := false
	set := mustCompile(t, "rules:\n  - {name: A, condition: KernelReady, reason: A, severity: Warning, source: kmsg, patterns: [boom]}\n",
		Options{Policy: policy.New(map[string]policy.Override{"A": {Enabled: &no}})})
	if len(set.Rules()) != 0 || len(NewEngine(set).Process(kmsg("boom", t0), nil)) != 0 || set.Inputs().Kmsg {
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
	e := newPipeline(set)
	fs := e.Process(kmsg("pt_main_thread[2536443]: segfault at 8 ip 00007f sp 00007f error 4 in libnccl.so.2[7f+1000]", t0))
	if len(fs) != 2 || fs[0].Reason != "AppCrash" || fs[0].Message != `Process "pt_main_thread" crashed` || fs[1].Reason != "NvidiaNCCLError" {
		t.Fatalf("fan-out: %+v", fs)
	}
	file := func(p, m string) *source.Record {
		return &source.Record{Kind: source.KindFile, Path: p, Message: m, Time: t0}
	}
	if n := len(e.Process(file("/var/log/ipamd.log", "Failed to check API server connectivity: timeout"))); n != 1 {
		t.Fatalf("file rule: %d findings", n)
	}
	if n := len(e.Process(file("/var/log/ipamd.log", "Failed to check API server connectivity: invalid configuration: no configuration has been provided"))); n != 0 {
		t.Fatal("exclude ignored")
	}
	if n := len(e.Process(file("/var/log/sub/x.log", "Failed to check API server connectivity"))); n != 0 {
		t.Fatal("path glob matched a file in a subdirectory")
	}
	j := func(id, m string) *source.Record {
		return &source.Record{Kind: source.KindJournal, Identifier: id, Message: m, Time: t0}
	}
	if len(e.Process(j("kubelet", "fork/exec /bin/x: resource temporarily unavailable"))) != 1 || len(e.Process(j("containerd", "fork/exec /bin/x: resource temporarily unavailable"))) != 0 {
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
	p := newPipeline(set)
	fs := p.Process(kmsg(`pull failed: GET https://robot:Pa55w0rdCanary@registry.example.com/v2/app failed; token=ghp_0123456789abcdefghijABCDEFGHIJ012345`, t0))
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
	p := newPipeline(set)
	for _, line := range []string{
		"Buffer I/O error on nvme1n1, logical block 7",
		"Buffer I/O error on nvme1n1, logical block 7", // cached
		"Buffer I/O error on nvme1n1 password=Hunter2Canary",
		"Buffer I/O error on nvme1n1 password=Hunter2Canary", // cached
	} {
		buf := []byte(line)
		rec := &source.Record{Kind: source.KindFile, Path: "/var/log/kern.log", Message: unsafe.String(&buf[0], len(buf)), Time: t0}
		fs := p.Process(rec)
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

// TestInstantiateEvent: an event's captures build the finding the named
// rules build from a log line with the same captures: the first rule whose
// sets admit them, with config's sets; a rule using a capture the event
// lacks is an error rather than a finding with a hole in it.
func TestInstantiateEvent(t *testing.T) {
	f, err := Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(f, Options{Sets: map[string][]string{"nvidiaFatalXIDs": {"79", "13"}}})
	if err != nil {
		t.Fatal(err)
	}
	xid := func(n string) policy.Event {
		return policy.Event{Rules: []string{"NvidiaXIDError", "NvidiaXIDWarning"}, Captures: map[string]string{"xid": n, "pci": "0000:3b:00"},
			Source: "nvml", Time: t0}
	}
	for n, line := range map[string]string{
		"79": "NVRM: Xid (PCI:0000:3b:00): 79, pid=0, GPU has fallen off the bus.",
		"13": "NVRM: Xid (PCI:0000:3b:00): 13, pid=1, Graphics Exception",
		"48": "NVRM: Xid (PCI:0000:3b:00): 48, pid=1, DBE",
	} {
		got, ok, err := set.Instantiate(xid(n))
		if err != nil || !ok {
			t.Fatalf("XID %s: %v, %v", n, ok, err)
		}
		want := NewEngine(set).Process(kmsg(line, t0), nil)
		if len(want) != 1 {
			t.Fatalf("%s: %+v", line, want)
		}
		got.Source = want[0].Source
		if !reflect.DeepEqual(got, want[0]) {
			t.Errorf("XID %s:\n event: %+v\n line:  %+v", n, got, want[0])
		}
	}
	if _, ok, err := set.Instantiate(policy.Event{Rules: []string{"NoSuchRule"}, Captures: map[string]string{"xid": "1"}}); ok || err != nil {
		t.Errorf("unknown rule: %v %v", ok, err)
	}
	if _, _, err := set.Instantiate(policy.Event{Rules: []string{"NvidiaXIDError"}, Captures: map[string]string{"xid": "79"}, Source: "nvml"}); err == nil ||
		!strings.Contains(err.Error(), `capture "pci"`) {
		t.Errorf("missing capture: %v", err)
	}
}
