package npdimport

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/rules"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// goldenCases convert the test configs; all but "unmappable" must convert
// every rule.
var goldenCases = []struct {
	name    string
	files   []string
	condMap []string
}{
	{"defaults", []string{"kernel-monitor.json", "readonly-monitor.json", "docker-monitor.json", "systemd-monitor.json"}, nil},
	{"filelog", []string{"kernel-monitor-filelog.json", "docker-monitor-filelog.json"}, nil},
	{"legacy-and-custom", []string{"kernel-monitor-legacy.json", "custom-monitor.json"}, customMap},
	{"unmappable", []string{"unmappable.json", "unmappable-filelog.json", "unmappable-journal.json"}, nil},
}

// customMap maps custom-monitor.json's own condition and reason.
var customMap = []string{"GPUDriverMismatch=AcceleratedHardwareReady", "FooDeviceError=NetworkingReady"}

func convertFiles(t *testing.T, condMap []string, files ...string) *Result {
	t.Helper()
	var in []Input
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, Input{Name: "testdata/" + f, Data: b})
	}
	cm, err := ParseConditionMap(condMap)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert(in, Options{ConditionMap: cm})
	if err != nil {
		t.Fatalf("convert %v: %v", files, err)
	}
	return res
}

// TestGolden: the converted rules file and the issues of each case are the
// reviewed ones in testdata/golden (go test -update rewrites them), the
// rules validate together with the built-in catalogue, and the test
// configs that mirror NPD's shipped ones convert without a skipped rule.
func TestGolden(t *testing.T) {
	cat, err := rules.Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			res := convertFiles(t, tc.condMap, tc.files...)
			out, err := res.YAML()
			if err != nil {
				t.Fatal(err)
			}
			var issues strings.Builder
			for _, is := range res.Issues {
				fmt.Fprintln(&issues, is)
			}
			compareGolden(t, tc.name+".yaml", out)
			compareGolden(t, tc.name+".stderr", []byte(issues.String()))

			f, err := rules.Parse(out, tc.name)
			if err != nil {
				t.Fatalf("output does not parse: %v", err)
			}
			if _, err := rules.Compile(rules.Merge(cat, f), rules.Options{}); err != nil {
				t.Fatalf("output does not compile with the catalogue: %v", err)
			}
			if tc.name != "unmappable" && res.Skipped() {
				t.Errorf("skipped rules:\n%s", issues.String())
			}
		})
	}
}

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it after review):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestUnmappableListed: every construct of unmappable*.json that cannot be
// converted is listed once, as skipped, with its file and rule; the one
// good rule still converts.
func TestUnmappableListed(t *testing.T) {
	res := convertFiles(t, nil, "unmappable.json", "unmappable-filelog.json", "unmappable-journal.json")
	skipped := map[string]int{}
	for _, is := range res.Issues {
		if is.Skipped {
			skipped[fmt.Sprintf("%s#%d", filepath.Base(is.File), is.Rule)]++
			if is.Rule > 0 && (is.Line == 0 || is.Reason == "") {
				t.Errorf("issue without line or reason: %v", is)
			}
		}
	}
	want := map[string]int{"unmappable-filelog.json#0": 1, "unmappable-journal.json#1": 1, "unmappable-journal.json#2": 1}
	for i := 2; i <= 13; i++ {
		want[fmt.Sprintf("unmappable.json#%d", i)] = 1
	}
	if !maps.Equal(skipped, want) {
		t.Errorf("skipped %v, want %v", skipped, want)
	}
	if len(res.Rules.Rules) != 1 || res.Rules.Rules[0].Reason != "FooWarning" {
		t.Errorf("converted %+v, want only FooWarning", res.Rules.Rules)
	}
}

// exampleSet holds the example lines of one NPD rule; see
// testdata/examples.yaml.
type exampleSet struct {
	Match         []string `yaml:"match"`
	Miss          []string `yaml:"miss"`
	ConvertedOnly []string `yaml:"convertedOnly"`
	NPDOnly       []string `yaml:"npdOnly"`
}

func loadExamples(t *testing.T) map[string]map[int]exampleSet {
	t.Helper()
	b, err := os.ReadFile("testdata/examples.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ex map[string]map[int]exampleSet
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&ex); err != nil {
		t.Fatal(err)
	}
	return ex
}

// npdModel is this test's model of how NPD's system log monitor matches:
// the filelog watcher drops lines on its skip list and lines without a
// parseable timestamp or a message, and takes the highest-numbered message
// group; kmsg and journald messages are trimmed; the last bufferSize
// messages (empty at first) are joined with "\n" and searched with each
// rule's pattern followed by `\z`.
type npdModel struct {
	cfg      *monitorConfig
	buf      []string
	patterns []*regexp.Regexp
	ts, msg  *regexp.Regexp
}

func newNPDModel(cfg *monitorConfig) *npdModel {
	m := &npdModel{cfg: cfg, buf: make([]string, cfg.BufferSize)}
	for _, r := range cfg.Rules {
		m.patterns = append(m.patterns, regexp.MustCompile(r.Pattern+`\z`))
	}
	if cfg.Plugin == "filelog" {
		m.ts = regexp.MustCompile(cfg.PluginConfig["timestamp"])
		m.msg = regexp.MustCompile(cfg.PluginConfig["message"])
	}
	return m
}

// push feeds one line and reports which rules NPD reports on it.
func (m *npdModel) push(line string) []bool {
	fired := make([]bool, len(m.patterns))
	msg := strings.TrimSpace(line)
	if m.cfg.Plugin == "filelog" {
		for _, s := range m.cfg.SkipList {
			if strings.Contains(line, s) {
				return fired
			}
		}
		ts := m.ts.FindStringSubmatch(line)
		if ts == nil {
			return fired
		}
		if _, err := time.ParseInLocation(m.cfg.PluginConfig["timestampFormat"], ts[len(ts)-1], time.Local); err != nil {
			return fired
		}
		mm := m.msg.FindStringSubmatch(line)
		if mm == nil {
			return fired
		}
		msg = mm[len(mm)-1]
	} else if msg == "" && m.cfg.Plugin == "kmsg" {
		return fired
	}
	m.buf = append(m.buf[1:], msg)
	joined := strings.Join(m.buf, "\n")
	for i, re := range m.patterns {
		fired[i] = re.MatchString(joined)
	}
	return fired
}

// converted runs the converted rules of one config through the real
// engine.
type converted struct {
	cfg    *monitorConfig
	engine *rules.Engine
	stage  *policy.Stage
	names  []string // converted rule name by NPD rule index
	at     time.Time
}

func newConverted(t *testing.T, res *Result, cfg *monitorConfig) *converted {
	t.Helper()
	set := compileResult(t, res)
	c := &converted{cfg: cfg, engine: rules.NewEngine(set), stage: set.Policy().Stage("", nil), names: make([]string, len(cfg.Rules)), at: time.Unix(1_700_000_000, 0)}
	for name, o := range res.origins {
		c.names[o.Rule-1] = name
	}
	return c
}

// record is the line as the daemon's source for the config's plugin
// hands it to the engine.
func (c *converted) record(line string) source.Record {
	c.at = c.at.Add(time.Second)
	rec := source.Record{Message: line, Time: c.at, Priority: -1, Facility: -1}
	switch c.cfg.Plugin {
	case "kmsg":
		rec.Kind = source.KindKmsg
	case "journald":
		rec.Kind = source.KindJournal
		rec.Identifier = c.cfg.PluginConfig["source"]
		rec.Message = strings.TrimRight(line, " \t\r\n\v\f") // as the journal source does
	case "filelog":
		rec.Kind = source.KindFile
		rec.Path = c.cfg.LogPath
	}
	return rec
}

func (c *converted) push(line string) ([]bool, []finding.Finding) {
	rec := c.record(line)
	var fs []finding.Finding
	for _, o := range c.engine.Process(&rec, nil) {
		if f, ok := c.stage.Apply(o); ok {
			fs = append(fs, f)
		}
	}
	fired := make([]bool, len(c.names))
	for _, f := range fs {
		if i := slices.Index(c.names, f.Rule); i >= 0 {
			fired[i] = true
		}
	}
	return fired, fs
}

// TestExamples is the golden test of detection: for every rule of every
// test config, the converted rule reports every example line NPD reports
// and none of the near misses, and where the two differ it is one of the
// documented differences listed in examples.yaml. Every line of a file's
// examples is also checked against every other rule of the file.
func TestExamples(t *testing.T) {
	ex := loadExamples(t)
	var configs []string
	for _, tc := range goldenCases {
		if tc.name != "unmappable" {
			configs = append(configs, tc.files...)
		}
	}
	if got := slices.Sorted(maps.Keys(ex)); !slices.Equal(got, slices.Sorted(slices.Values(configs))) {
		t.Fatalf("examples.yaml covers %v, want every converted test config %v", got, configs)
	}
	for _, file := range configs {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := parseConfig(file, b)
			if err != nil {
				t.Fatal(err)
			}
			res := convertFiles(t, customMap, file)
			if len(res.Rules.Rules) != len(cfg.Rules) {
				t.Fatalf("%d rules converted, want all %d", len(res.Rules.Rules), len(cfg.Rules))
			}
			for i := range cfg.Rules {
				e := ex[file][i+1]
				if len(e.Match)+len(e.ConvertedOnly) == 0 || len(e.Miss) == 0 {
					t.Errorf("rule %d (%s): examples.yaml needs lines it matches and near misses", i+1, cfg.Rules[i].Reason)
				}
			}
			for ri, e := range ex[file] {
				if ri < 1 || ri > len(cfg.Rules) {
					t.Fatalf("examples for rule %d: the file has %d rules", ri, len(cfg.Rules))
				}
				for kind, lines := range map[string][]string{"match": e.Match, "miss": e.Miss, "convertedOnly": e.ConvertedOnly, "npdOnly": e.NPDOnly} {
					wantNPD := kind == "match" || kind == "npdOnly"
					wantOurs := kind == "match" || kind == "convertedOnly"
					for _, seq := range lines {
						checkSequence(t, res, cfg, ri-1, seq, wantNPD, wantOurs)
					}
				}
			}
		})
	}
}

// checkSequence feeds the lines of seq to a fresh NPD model and a fresh
// engine. On the last line rule ri must be reported by NPD and by the
// converted rule as wanted; on every other (line, rule) pair the two must
// agree.
func checkSequence(t *testing.T, res *Result, cfg *monitorConfig, ri int, seq string, wantNPD, wantOurs bool) {
	t.Helper()
	npd := newNPDModel(cfg)
	ours := newConverted(t, res, cfg)
	lines := strings.Split(seq, "\n")
	for li, line := range lines {
		n := npd.push(line)
		o, _ := ours.push(line)
		for j := range cfg.Rules {
			last := li == len(lines)-1 && j == ri
			switch {
			case last && (n[j] != wantNPD || o[j] != wantOurs):
				t.Errorf("rule %d (%s) on %q: NPD reports %v (want %v), converted rule %v (want %v)", j+1, cfg.Rules[j].Reason, seq, n[j], wantNPD, o[j], wantOurs)
			case !last && n[j] != o[j]:
				t.Errorf("rule %d (%s) on line %d of %q: NPD reports %v, converted rule %v", j+1, cfg.Rules[j].Reason, li+1, seq, n[j], o[j])
			}
		}
	}
}
