package npdimport

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/rules"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

func TestScan(t *testing.T) {
	for _, tc := range []struct {
		p       string
		breaks  int
		topAlt  bool
		flags   int
		caps    int
		lastCap string // text of the highest-numbered group
	}{
		{p: `a\nb`, breaks: 1},
		{p: "a\nb", breaks: 1},
		{p: `(a\nb)c`, caps: 1, lastCap: `(a\nb)`},
		{p: `[\n]x\\n`, breaks: 0},      // a class, then an escaped backslash and "n"
		{p: `[]\n]\n`, breaks: 1},       // "]" first in a class is a literal
		{p: `[^]|(]|x`, topAlt: true},   // "|" and "(" inside the class do not count
		{p: `[[:alpha:]|]x`, breaks: 0}, // nor inside [:name:]
		{p: `\Q(|\n\Ex\ny`, breaks: 1},  // \Q…\E quotes
		{p: `(?i)a\n(?s)b(?P<x>c)(?:d)(e)`, breaks: 1, flags: 2, caps: 2, lastCap: `(e)`},
		{p: `(?i:a|b)|c`, topAlt: true},
		{p: `a(b(c)d)`, caps: 2, lastCap: `(c)`},
	} {
		l := scan(tc.p)
		if len(l.breaks) != tc.breaks || l.topAlt != tc.topAlt || len(l.flags) != tc.flags || len(l.captures) != tc.caps {
			t.Errorf("scan(%q) = %+v", tc.p, l)
			continue
		}
		if tc.caps > 0 {
			c := l.captures[tc.caps-1]
			if got := tc.p[c[0] : c[1]+1]; got != tc.lastCap {
				t.Errorf("scan(%q): last group %q, want %q", tc.p, got, tc.lastCap)
			}
		}
		// The scan agrees with the parser on the groups.
		if n := regexp.MustCompile(tc.p).NumSubexp(); n != len(l.captures) {
			t.Errorf("scan(%q): %d groups, regexp has %d", tc.p, len(l.captures), n)
		}
	}
}

func TestTrimEndAnchor(t *testing.T) {
	for in, want := range map[string]string{
		`fatal$`:   `fatal`,
		`fatal\$`:  `fatal\$`,
		`fatal\\$`: `fatal\\`,
		`x\z`:      `x`,
		`x\\z`:     `x\\z`,
		`[$]`:      `[$]`,
	} {
		if got := trimEndAnchor(in); got != want {
			t.Errorf("trimEndAnchor(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestInvalidInput: what NPD itself refuses, and configs of another kind,
// are errors that name every problem of every file, with its line where
// one is known; nothing is converted.
func TestInvalidInput(t *testing.T) {
	in := []Input{
		{Name: "syntax.json", Data: []byte("{\n  \"plugin\": \"kmsg\",\n  \"rules\": [\n    {\"type\": \"temporary\" \"reason\": \"X\"}\n  ]\n}\n")},
		{Name: "custom.json", Data: []byte(`{"plugin": "custom", "pluginConfig": {"invoke_interval": "30s"}, "rules": []}`)},
		{Name: "none.json", Data: []byte(`{"rules": []}`)},
		{Name: "regexp.json", Data: []byte("{\"plugin\": \"kmsg\",\n \"rules\": [\n  {\"type\": \"temporary\", \"reason\": \"Bad\", \"pattern\": \"a(b\"}]}")},
		{Name: "journal.json", Data: []byte(`{"plugin": "journald", "rules": []}`)},
		{Name: "filelog.json", Data: []byte(`{"plugin": "filelog", "pluginConfig": {"message": "(.*"}, "rules": []}`)},
		{Name: "buffer.json", Data: []byte(`{"plugin": "kmsg", "bufferSize": -1, "rules": []}`)},
		{Name: "good.json", Data: []byte(`{"plugin": "kmsg", "rules": [{"type": "temporary", "reason": "Fine", "pattern": "fine"}]}`)},
	}
	res, err := Convert(in, Options{})
	if err == nil {
		t.Fatalf("no error; converted %+v", res.Rules)
	}
	for _, want := range []string{
		"syntax.json:4: invalid JSON",
		`custom.json: a custom-plugin-monitor config`,
		"none.json: no plugin",
		`regexp.json:3: rule 1 (Bad): pattern "a(b"`,
		"journal.json: journald plugin without pluginConfig.source",
		"filelog.json: filelog plugin without pluginConfig.timestamp",
		"filelog.json: filelog plugin without pluginConfig.timestampFormat",
		"filelog.json: filelog plugin without logPath",
		"buffer.json: bufferSize -1",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "good.json") {
		t.Errorf("error names the good file:\n%v", err)
	}
}

func convertOne(t *testing.T, cfg string, opts Options) (*Result, *rules.Engine) {
	t.Helper()
	res, err := Convert([]Input{{Name: "test.json", Data: []byte(cfg)}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res, rules.NewEngine(compileResult(t, res))
}

// compileResult compiles the rules file that res converts to, on its own
// (without the built-in catalogue).
func compileResult(t *testing.T, res *Result) *rules.Set {
	t.Helper()
	out, err := res.YAML()
	if err != nil {
		t.Fatal(err)
	}
	f, err := rules.Parse(out, "converted")
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(f, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestMessageSuffix: NPD's message is the matched log text, then "; " and
// patternGeneratedMessageSuffix; a "$" in the suffix stays literal.
func TestMessageSuffix(t *testing.T) {
	for _, tc := range []struct{ name, cfg, line, want string }{
		{"kmsg", `{"plugin": "kmsg", "rules": [{"type": "temporary", "reason": "KernelPanic",
			"pattern": "Kernel panic - not syncing: .*", "patternGeneratedMessageSuffix": "see $RUNBOOK"}]}`,
			"Kernel panic - not syncing: Fatal exception", "Kernel panic - not syncing: Fatal exception; see $RUNBOOK"},
		{"alternation", `{"plugin": "kmsg", "rules": [{"type": "temporary", "reason": "Foo",
			"pattern": "foo: reset|foo: down", "patternGeneratedMessageSuffix": "check foo"}]}`,
			"drv foo: reset by firmware", "drv foo: reset by firmware; check foo"},
		{"filelog", `{"plugin": "filelog", "logPath": "/var/log/kern.log",
			"pluginConfig": {"timestamp": "^.{15}", "message": "kernel: \\[.*\\] (.*)", "timestampFormat": "Jan _2 15:04:05"},
			"rules": [{"type": "temporary", "reason": "KernelOops", "pattern": "Kernel panic - not syncing: .*", "patternGeneratedMessageSuffix": "see runbook"}]}`,
			"Jan  2 15:04:05 host kernel: [ 1.0] Kernel panic - not syncing: Fatal exception", "Kernel panic - not syncing: Fatal exception; see runbook"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, eng := convertOne(t, tc.cfg, Options{})
			r := res.Rules.Rules[0]
			rec := source.Record{Kind: source.Kind(r.Source), Message: tc.line, Path: "/var/log/kern.log", Time: time.Unix(1, 0)}
			fs := eng.Process(&rec, nil)
			if len(fs) != 1 || fs[0].Message != tc.want {
				t.Fatalf("findings %+v, want one with message %q", fs, tc.want)
			}
		})
	}
}

// TestJournalIdentifier: a journald config's rules read the entries of its
// SYSLOG_IDENTIFIER only, as NPD's journal match does.
func TestJournalIdentifier(t *testing.T) {
	_, eng := convertOne(t, `{"plugin": "journald", "pluginConfig": {"source": "dockerd"}, "rules": [
		{"type": "temporary", "reason": "DockerContainerStartupFailure", "pattern": "container process is already dead: unknown"}]}`, Options{})
	line := "OCI runtime start failed: container process is already dead: unknown"
	for ident, want := range map[string]int{"dockerd": 1, "containerd": 0, "": 0} {
		rec := source.Record{Kind: source.KindJournal, Identifier: ident, Message: line, Time: time.Unix(1, 0)}
		if got := len(eng.Process(&rec, nil)); got != want {
			t.Errorf("identifier %q: %d findings, want %d", ident, got, want)
		}
	}
	rec := source.Record{Kind: source.KindKmsg, Message: line, Time: time.Unix(1, 0)}
	if got := len(eng.Process(&rec, nil)); got != 0 {
		t.Errorf("kmsg record: %d findings, want 0", got)
	}
}

// TestConditionsAndSeverities: temporary rules become Warnings, permanent
// ones Fatal findings of the condition the table or --condition-map
// gives; the map wins over the table, and a temporary rule's reason can be
// mapped too.
func TestConditionsAndSeverities(t *testing.T) {
	cfg := `{"plugin": "kmsg",
		"conditions": [{"type": "KernelDeadlock", "reason": "KernelHasNoDeadlock", "message": "ok"},
		               {"type": "FooStuck", "reason": "FooNotStuck", "message": "ok"}],
		"rules": [
		{"type": "temporary", "reason": "TaskHung", "pattern": "task \\S+ blocked"},
		{"type": "temporary", "reason": "Ext4Error", "pattern": "EXT4-fs error .*"},
		{"type": "temporary", "reason": "SomethingElse", "pattern": "something"},
		{"type": "permanent", "condition": "KernelDeadlock", "reason": "DockerHung", "pattern": "task docker:\\w+ blocked"},
		{"type": "permanent", "condition": "FooStuck", "reason": "FooIsStuck", "pattern": "foo stuck"}]}`
	type want struct{ cond, sev string }
	check := func(opts Options, wants map[string]want, skipped []string) {
		t.Helper()
		res, _ := convertOne(t, cfg, opts)
		got := map[string]want{}
		for _, r := range res.Rules.Rules {
			got[r.Reason] = want{r.Condition, r.Severity}
		}
		for reason, w := range wants {
			if got[reason] != w {
				t.Errorf("%v: %s = %v, want %v", opts.ConditionMap, reason, got[reason], w)
			}
		}
		var sk []string
		for _, is := range res.Issues {
			if is.Skipped {
				sk = append(sk, is.Reason)
			}
		}
		if !slices.Equal(sk, skipped) {
			t.Errorf("%v: skipped %v, want %v", opts.ConditionMap, sk, skipped)
		}
	}
	check(Options{}, map[string]want{
		"TaskHung":      {finding.KernelReady, "Warning"},
		"Ext4Error":     {finding.StorageReady, "Warning"},
		"SomethingElse": {finding.KernelReady, "Warning"}, // a kernel message
		"DockerHung":    {finding.KernelReady, "Fatal"},
	}, []string{"FooIsStuck"})
	cm, err := ParseConditionMap([]string{"FooStuck=StorageReady", "KernelDeadlock = ContainerRuntimeReady", "SomethingElse=NetworkingReady"})
	if err != nil {
		t.Fatal(err)
	}
	check(Options{ConditionMap: cm}, map[string]want{
		"SomethingElse": {finding.NetworkingReady, "Warning"},
		"DockerHung":    {finding.ContainerRuntimeReady, "Fatal"},
		"FooIsStuck":    {finding.StorageReady, "Fatal"},
	}, nil)

	for _, bad := range []string{"KernelDeadlock", "=KernelReady", "KernelDeadlock=Ready", "KernelDeadlock=kernelready"} {
		if _, err := ParseConditionMap([]string{bad}); err == nil {
			t.Errorf("ParseConditionMap(%q): no error", bad)
		}
	}
}

// TestNamesUnique: rules get names of their own, across files of the same
// name and against the catalogue, so the converted file loads beside it.
func TestNamesUnique(t *testing.T) {
	cfg := []byte(`{"plugin": "kmsg", "rules": [
		{"type": "temporary", "reason": "KernelOops", "pattern": "BUG: a"},
		{"type": "temporary", "reason": "KernelOops", "pattern": "BUG: b"}]}`)
	res, err := Convert([]Input{{Name: "a/kernel monitor.json", Data: cfg}, {Name: "b/kernel monitor.json", Data: cfg}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range res.Rules.Rules {
		names = append(names, r.Name)
	}
	want := []string{"npd-kernel-monitor-KernelOops", "npd-kernel-monitor-KernelOops-2", "npd-kernel-monitor-KernelOops-3", "npd-kernel-monitor-KernelOops-4"}
	if !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
}

// TestRestateMultiLine: a multi-line pattern is matched on its last line,
// with the flags set before it; what is dropped is said.
func TestRestateMultiLine(t *testing.T) {
	r, err := restate(`(?i)first (\d+)\n(?s)second\nthird .*$`, 10)
	if err != nil {
		t.Fatal(err)
	}
	if r.body != `(?i)(?s)third .*` || r.lines != 3 || r.context != `(?i)first (\d+)\n(?s)second` {
		t.Errorf("restated %+v", r)
	}
	if len(r.notes) != 2 || !strings.Contains(r.notes[0], "3-line pattern") || !strings.Contains(r.notes[1], "line break") {
		t.Errorf("notes %q: want the dropped lines and (?s)", r.notes)
	}
}

// TestFilelogLimits: the filelog patterns and message regexes that cannot
// be restated inside one regexp are skipped with a reason; the rest
// convert.
func TestFilelogLimits(t *testing.T) {
	cfg := func(message, pattern string) string {
		m, _ := json.Marshal(message)
		p, _ := json.Marshal(pattern)
		return `{"plugin": "filelog", "logPath": "/var/log/x.log",
			"pluginConfig": {"timestamp": "^\\S+", "message": ` + string(m) + `, "timestampFormat": "2006-01-02"},
			"rules": [{"type": "temporary", "reason": "KernelOops", "pattern": ` + string(p) + `}]}`
	}
	for _, tc := range []struct{ message, pattern, skip string }{
		{`x: (.*)`, `foo$`, ""},
		{`x: (?P<msg>[^\n]+)$`, `foo`, ""},
		{`(?i)x: (.*)`, `foo`, ""},
		{`x: (.*)`, `foo|bar`, "top-level `|`"},
		{`x: (.*)`, `^foo`, "inside a filelog rule's pattern"},
		{`x: (.*)`, `(?m)foo$ bar`, "inside a filelog rule's pattern"},
		{`x: (\S+)`, `foo`, "does not take any text of a line"},
		{`x: (.*?)`, `foo`, "does not take any text of a line"},
		{`x: .*`, `foo`, "has no capture group"},
	} {
		res, err := Convert([]Input{{Name: "f.json", Data: []byte(cfg(tc.message, tc.pattern))}}, Options{})
		if err != nil {
			t.Fatalf("%q %q: %v", tc.message, tc.pattern, err)
		}
		var skipped []string
		for _, is := range res.Issues {
			if is.Skipped {
				skipped = append(skipped, is.Msg)
			}
		}
		switch {
		case tc.skip == "" && (len(skipped) > 0 || len(res.Rules.Rules) != 1):
			t.Errorf("%q %q: skipped %q", tc.message, tc.pattern, skipped)
		case tc.skip != "" && (len(skipped) != 1 || !strings.Contains(skipped[0], tc.skip)):
			t.Errorf("%q %q: skipped %q, want %q", tc.message, tc.pattern, skipped, tc.skip)
		}
	}
	// The message regex's (?i) does not reach the NPD pattern.
	_, eng := convertOne(t, cfg(`(?i)x: (.*)`, `Foo`), Options{})
	for line, want := range map[string]int{"2024-01-01 X: a Foo": 1, "2024-01-01 x: a foo": 0} {
		rec := source.Record{Kind: source.KindFile, Path: "/var/log/x.log", Message: line, Time: time.Unix(1, 0)}
		if got := len(eng.Process(&rec, nil)); got != want {
			t.Errorf("%q: %d findings, want %d", line, got, want)
		}
	}
}
