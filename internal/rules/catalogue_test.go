package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/reason"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

type testCase struct {
	Name       string          `yaml:"name"`
	Source     string          `yaml:"source"`
	Identifier string          `yaml:"identifier"`
	Unit       string          `yaml:"unit"`
	Path       string          `yaml:"path"`
	Interval   policy.Duration `yaml:"interval"`
	Lines      []string        `yaml:"lines"`
	Expect     []expect        `yaml:"expect"`
}

type expect struct {
	Line      int    `yaml:"line"`
	Reason    string `yaml:"reason"`
	Severity  string `yaml:"severity"`
	Condition string `yaml:"condition"`
	Message   string `yaml:"message"`
}

func loadCases(t *testing.T) []testCase {
	t.Helper()
	files, err := filepath.Glob("testdata/cases/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test cases in testdata/cases: %v", err)
	}
	var all []testCase
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cs []testCase
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&cs); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i := range cs {
			cs[i].Name = filepath.Base(f) + ": " + cs[i].Name
		}
		all = append(all, cs...)
	}
	return all
}

func catalogueSet(t testing.TB) *Set {
	t.Helper()
	f, err := Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(f, Options{})
	if err != nil {
		t.Fatalf("built-in catalogue does not compile:\n%v", err)
	}
	return set
}

func caseRecords(c testCase) []source.Record {
	interval := time.Duration(c.Interval)
	if interval == 0 {
		interval = time.Second
	}
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	recs := make([]source.Record, len(c.Lines))
	for i, l := range c.Lines {
		recs[i] = source.Record{Kind: source.Kind(c.Source), Message: l, Identifier: c.Identifier, Unit: c.Unit, Path: c.Path, Time: base.Add(time.Duration(i) * interval)}
	}
	return recs
}

// TestCatalogueCases runs every case file against the built-in catalogue:
// the findings must be exactly those listed, in order.
func TestCatalogueCases(t *testing.T) {
	set := catalogueSet(t)
	for _, c := range loadCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			p := newPipeline(set)
			var got []string
			var gotF []finding.Finding
			for i, rec := range caseRecords(c) {
				for _, f := range p.Process(&rec) {
					got = append(got, fmt.Sprintf("line %d: %s", i+1, f.Reason))
					gotF = append(gotF, f)
				}
			}
			var want []string
			for _, x := range c.Expect {
				want = append(want, fmt.Sprintf("line %d: %s", x.Line, x.Reason))
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("findings differ\n got: %q\nwant: %q", got, want)
			}
			for i, x := range c.Expect {
				f := gotF[i]
				if x.Severity != "" && string(f.Severity) != x.Severity {
					t.Errorf("line %d %s: severity %s, want %s", x.Line, x.Reason, f.Severity, x.Severity)
				}
				if x.Condition != "" && f.Condition != x.Condition {
					t.Errorf("line %d %s: condition %s, want %s", x.Line, x.Reason, f.Condition, x.Condition)
				}
				if x.Message != "" && f.Message != x.Message {
					t.Errorf("line %d %s: message %q, want %q", x.Line, x.Reason, f.Message, x.Message)
				}
			}
		})
	}
}

// TestCatalogueCoverage demands, for every built-in rule, a case where it
// fires and a near miss: a case whose lines contain the rule's prefilter
// literal but where the rule's reason is not expected.
func TestCatalogueCoverage(t *testing.T) {
	set := catalogueSet(t)
	cases := loadCases(t)
	for _, c := range set.rules {
		reasonRE := regexp.MustCompile("^" + regexp.QuoteMeta(c.reason) + "$")
		if c.templated {
			reasonRE = reason.Matcher(c.reason)
		}
		positive, negative := false, false
		for _, tc := range cases {
			if tc.Source != string(c.kind) {
				continue
			}
			fired := false
			for _, x := range tc.Expect {
				if reasonRE.MatchString(x.Reason) {
					fired = true
				}
			}
			if fired {
				positive = true
				continue
			}
			for _, l := range tc.Lines {
				for _, lit := range c.literals {
					if strings.Contains(l, lit) {
						negative = true
					}
				}
				if c.literals == nil {
					negative = true
				}
			}
		}
		if !positive {
			t.Errorf("rule %s (%s): no case where it fires", c.name, c.reason)
		}
		if !negative {
			t.Errorf("rule %s (%s): no near-miss case (a line with one of %q that must not fire)", c.name, c.reason, c.literals)
		}
	}
}

// TestPrefilterAgreesWithRegexps checks the literal prefilter never hides a
// match: every case line is also evaluated against every rule directly.
func TestPrefilterAgreesWithRegexps(t *testing.T) {
	set := catalogueSet(t)
	for _, c := range loadCases(t) {
		for _, rec := range caseRecords(c) {
			for _, r := range set.rules {
				matched := false
				for _, p := range r.patterns {
					matched = matched || p.MatchString(rec.Message)
				}
				if !matched {
					continue
				}
				if r.literals == nil {
					continue
				}
				found := false
				for _, l := range r.literals {
					found = found || strings.Contains(rec.Message, l)
				}
				if !found {
					t.Errorf("rule %s matches %q but none of its literals %q occur", r.name, rec.Message, r.literals)
				}
			}
		}
	}
}
