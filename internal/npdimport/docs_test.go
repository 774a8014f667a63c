package npdimport

import (
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/rules"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

// docTable returns the rows of the table in docs/rules.md whose header
// starts with header, as the backquoted names of each cell.
func docTable(t *testing.T, header string) [][][]string {
	t.Helper()
	b, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows [][][]string
	in := false
	code := regexp.MustCompile("`([^`]+)`")
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "| "+header+" |"):
			in = true
		case in && strings.HasPrefix(l, "|---"):
		case in && strings.HasPrefix(l, "| "):
			var row [][]string
			for _, cell := range strings.Split(strings.Trim(l, "| "), " | ") {
				var names []string
				for _, m := range code.FindAllStringSubmatch(cell, -1) {
					names = append(names, m[1])
				}
				row = append(row, names)
			}
			rows = append(rows, row)
		case in:
			return rows
		}
	}
	if len(rows) == 0 {
		t.Fatalf("docs/rules.md has no table headed %q", header)
	}
	return rows
}

// TestDocsConditionTables: the condition tables of docs/rules.md are the
// ones the conversion uses.
func TestDocsConditionTables(t *testing.T) {
	for header, want := range map[string]map[string]string{
		"NPD condition":          KnownConditions,
		"NPD reason (temporary)": KnownEventReasons,
	} {
		got := map[string]string{}
		for _, row := range docTable(t, header) {
			for _, npd := range row[0] {
				got[npd] = row[1][0]
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("docs/rules.md table %q:\n%v\nwant (from the code)\n%v", header, got, want)
		}
	}
}

// TestDocsBuiltinCounterparts: for each row of the "NPD reasons → built-in
// reason" table of docs/rules.md, the catalogue reports the built-in
// reason on the example lines of those NPD rules.
func TestDocsBuiltinCounterparts(t *testing.T) {
	cat, err := rules.Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(cat, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ex := loadExamples(t)
	lines := map[string][]string{} // NPD reason → example lines it matches
	for _, file := range []string{"kernel-monitor.json", "readonly-monitor.json", "kernel-monitor-legacy.json"} {
		b, err := os.ReadFile("testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		var cfg monitorConfig
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		for i, r := range cfg.Rules {
			for _, seq := range ex[file][i+1].Match {
				l := strings.Split(seq, "\n")
				lines[r.Reason] = append(lines[r.Reason], l[len(l)-1])
			}
		}
	}
	for _, row := range docTable(t, "NPD reasons") {
		builtin := row[1][0]
		for _, npd := range row[0] {
			if len(lines[npd]) == 0 {
				t.Errorf("%s: no example lines in testdata", npd)
			}
			for _, line := range lines[npd] {
				// Feed the line a few times, 10 s apart, for built-in
				// rules with a threshold.
				eng := rules.NewEngine(set)
				found := false
				for k := range 3 {
					rec := source.Record{Kind: source.KindKmsg, Message: line, Time: time.Unix(1_700_000_000+int64(10*k), 0)}
					for _, f := range eng.Process(&rec, nil) {
						found = found || f.Reason == builtin
					}
				}
				if !found {
					t.Errorf("%s line %q: the catalogue does not report %s", npd, line, builtin)
				}
			}
		}
	}
}
