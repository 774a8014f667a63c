package rules

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/coregx/ahocorasick"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/reason"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

// Set is a validated, compiled rule set. It is immutable and may be shared
// by several engines.
type Set struct {
	rules   []*compiled
	policy  *policy.Policy
	kmsg    *stream
	journal []*compiled
	files   []*compiled
	// byName finds the rules an Event names.
	byName map[string]*compiled
}

type compiled struct {
	idx       int
	rule      Rule
	name      string
	reason    string
	templated bool // reason contains capture references
	severity  finding.Severity
	kind      source.Kind
	idents    map[string]bool
	units     map[string]bool
	paths     []string
	patterns  []*regexp.Regexp
	exclude   []*regexp.Regexp
	in, notIn *setTest
	message   string
	key       string
	threshold policy.Threshold
	recovery  finding.Recovery
	// refs are the captures the reason, message and key refer to.
	refs []string
	// literals: at least one must occur in a line for the rule to match;
	// nil means the rule cannot be prefiltered and is always evaluated.
	literals []string
}

type setTest struct {
	name   string // the capture, for Events
	group  []int  // capture index per pattern
	values map[string]bool
}

// stream is the prefilter for the rules that apply to one kind of record.
type stream struct {
	rules    []int // indices into Set.rules, in rule order
	ac       *ahocorasick.Automaton
	litRules [][]int // automaton pattern ID → rule indices
	always   []int
	// skipAhead: the literals start with few distinct bytes, so the
	// automaton's IsMatch skip-ahead rejects most lines cheaply.
	skipAhead bool
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Compile validates f with opts applied and builds the matching structures.
// Every problem is reported, each a *problems.Problem with the rule's file,
// line and name, or the config key's.
func Compile(f *File, opts Options) (*Set, error) {
	var errs []error
	sets := map[string]map[string]bool{}
	for name, vals := range f.Sets {
		sets[name] = toSet(vals)
	}
	for _, name := range slices.Sorted(maps.Keys(opts.Sets)) {
		if _, ok := sets[name]; !ok {
			errs = append(errs, opts.problem("sets."+name, errors.New("no rule file defines this set")))
		}
		sets[name] = toSet(opts.Sets[name])
	}
	s := &Set{policy: opts.Policy, byName: map[string]*compiled{}}
	seen := map[string]string{}
	// Overrides may name what the rules produce, switched off or not, and
	// what the detectors declare.
	known := declaredProducers()
	for i := range f.Rules {
		r := f.Rules[i]
		name := r.EffectiveName()
		if prev, dup := seen[name]; dup && name != "" {
			errs = append(errs, r.problem(fmt.Errorf("name already used at %s (give each rule a distinct name)", prev)))
			continue
		}
		seen[name] = r.Origin
		c, err := compileRule(r, sets, opts.isCondition)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		known.add(c.reason, policy.Produced{Condition: r.Condition, Severity: c.severity})
		if !c.templated && !opts.Policy.Enabled(c.reason) {
			continue
		}
		c.idx = len(s.rules)
		s.rules = append(s.rules, c)
		s.byName[c.name] = c
	}
	errs = append(errs, opts.Policy.Check(known, opts.problem)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var kmsg []int
	for _, c := range s.rules {
		switch c.kind {
		case source.KindKmsg:
			kmsg = append(kmsg, c.idx)
		case source.KindJournal:
			s.journal = append(s.journal, c)
		case source.KindFile:
			s.files = append(s.files, c)
		}
	}
	s.kmsg = s.buildStream(kmsg)
	return s, nil
}

func toSet(vals []string) map[string]bool {
	m := make(map[string]bool, len(vals))
	for _, v := range vals {
		m[v] = true
	}
	return m
}

func compileRule(r Rule, sets map[string]map[string]bool, isCondition func(string) bool) (*compiled, error) {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, r.problem(fmt.Errorf(format, args...)))
	}
	c := &compiled{rule: r, name: r.EffectiveName(), reason: r.Reason, message: r.Message, key: r.Key}
	if !nameRE.MatchString(c.name) {
		fail("name %q must be letters, digits, '.', '_' or '-'", c.name)
	}
	if !isCondition(r.Condition) {
		fail("condition %q is not one of %s, nor a custom type declared in config.yaml conditions:", r.Condition, strings.Join(finding.Conditions, ", "))
	}
	sev, err := finding.ParseSeverity(r.Severity)
	if err != nil {
		fail("%v", err)
	}
	c.severity = sev
	switch source.Kind(r.Source) {
	case source.KindKmsg:
		if len(r.Identifiers)+len(r.Units)+len(r.Paths) > 0 {
			fail("source kmsg takes no identifiers, units or paths")
		}
	case source.KindJournal:
		if len(r.Identifiers)+len(r.Units) == 0 {
			fail("source journal needs identifiers or units to select entries")
		}
		if len(r.Paths) > 0 {
			fail("source journal takes no paths")
		}
	case source.KindFile:
		if len(r.Paths) == 0 {
			fail("source file needs paths")
		}
		if len(r.Identifiers)+len(r.Units) > 0 {
			fail("source file takes no identifiers or units")
		}
		for _, p := range r.Paths {
			if !filepath.IsAbs(p) {
				fail("path %q must be absolute", p)
			} else if _, err := filepath.Match(p, ""); err != nil {
				fail("path %q: %v", p, err)
			}
		}
	default:
		fail("source %q is not one of kmsg, journal, file", r.Source)
	}
	c.kind = source.Kind(r.Source)
	c.idents, c.units, c.paths = toSet(r.Identifiers), toSet(r.Units), r.Paths
	if len(r.Patterns) == 0 {
		fail("needs at least one pattern")
	}
	// Every expression that does not compile is reported, not only the
	// first.
	compileAll := func(what string, exprs []string) []*regexp.Regexp {
		var out []*regexp.Regexp
		for i, p := range exprs {
			re, err := regexp.Compile(p)
			if err != nil {
				fail("%s %d: %v", what, i+1, err)
				continue
			}
			out = append(out, re)
		}
		return out
	}
	c.patterns, c.exclude = compileAll("pattern", r.Patterns), compileAll("exclude", r.Exclude)
	if len(c.patterns) == len(r.Patterns) {
		for field, tmpl := range map[string]string{"reason": r.Reason, "message": r.Message, "key": r.Key} {
			for _, ref := range reason.Refs(tmpl) {
				c.refs = append(c.refs, ref)
				for i, re := range c.patterns {
					if groupIndex(re, ref) < 0 {
						fail("%s refers to capture %q, which pattern %d does not have", field, ref, i+1)
					}
				}
			}
		}
		c.templated = len(reason.Refs(r.Reason)) > 0
		if !reason.Plain(reason.Fill(r.Reason, "X")) {
			fail("reason %q must start with a letter and hold only letters, digits and '-'", r.Reason)
		}
		for label, ref := range map[string]*SetRef{"captureIn": r.CaptureIn, "captureNotIn": r.CaptureNotIn} {
			if ref == nil {
				continue
			}
			vals, ok := sets[ref.Set]
			if !ok {
				fail("%s: unknown set %q", label, ref.Set)
				continue
			}
			t := &setTest{name: ref.Group, values: vals}
			for i, re := range c.patterns {
				g := groupIndex(re, ref.Group)
				if g < 0 {
					fail("%s: pattern %d has no capture %q", label, i+1, ref.Group)
				}
				t.group = append(t.group, g)
			}
			if label == "captureIn" {
				c.in = t
			} else {
				c.notIn = t
			}
		}
	}
	if r.Threshold != nil {
		if err := r.Threshold.Check(); err != nil {
			fail("%v", err)
		}
		c.threshold = *r.Threshold
	}
	if r.Recovery != nil {
		if err := r.Recovery.Check(); err != nil {
			fail("%v", err)
		}
		c.recovery = r.Recovery.Finding()
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.literals = ruleLiterals(c.patterns)
	return c, nil
}

func groupIndex(re *regexp.Regexp, ref string) int {
	if n, err := strconv.Atoi(ref); err == nil {
		if n >= 0 && n <= re.NumSubexp() {
			return n
		}
		return -1
	}
	return re.SubexpIndex(ref)
}

// Inputs says what the sources must read for this rule set.
type Inputs struct {
	Kmsg        bool
	Identifiers []string
	Units       []string
	Paths       []string
}

// Inputs lists the journal matches and file paths the rules need.
func (s *Set) Inputs() Inputs {
	in := Inputs{Kmsg: s.kmsg != nil}
	ids, units, paths := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, c := range s.journal {
		for _, v := range c.rule.Identifiers {
			ids[v] = true
		}
		for _, v := range c.rule.Units {
			units[v] = true
		}
	}
	for _, c := range s.files {
		for _, p := range c.paths {
			paths[p] = true
		}
	}
	in.Identifiers, in.Units, in.Paths = slices.Sorted(maps.Keys(ids)), slices.Sorted(maps.Keys(units)), slices.Sorted(maps.Keys(paths))
	return in
}

// Info describes a compiled rule for listings and generated docs.
type Info struct {
	Rule
	// EffectiveSeverity etc. reflect config overrides.
	EffectiveSeverity  finding.Severity
	EffectiveThreshold policy.Threshold
}

// Rules lists the enabled rules in order.
func (s *Set) Rules() []Info {
	out := make([]Info, len(s.rules))
	for i, c := range s.rules {
		sev, th := s.policy.Effective(c.reason, c.severity, c.threshold)
		out[i] = Info{Rule: c.rule, EffectiveSeverity: sev, EffectiveThreshold: th}
		out[i].Name = c.name
	}
	return out
}

// Declared lists the reasons the detectors declare (internal/reason) that
// no rule of the set produces and the policy does not switch off, as rules
// of their detector, for listings.
func (s *Set) Declared() []Info {
	var produced reason.Set
	for _, c := range s.rules {
		produced.Add(c.reason)
	}
	var out []Info
	for _, r := range reason.All() {
		if produced.Has(r.Name) || !s.policy.Enabled(r.Name) {
			continue
		}
		name, _ := strings.CutPrefix(r.Detector, "probe:")
		sev, th := s.policy.Effective(r.Name, r.Severity, policy.Threshold{})
		out = append(out, Info{
			Rule: Rule{Name: name, Condition: r.Condition, Reason: r.Name, Severity: string(r.Severity), Source: r.Detector,
				Description: r.Description, Action: r.Action, Origin: "builtin", Builtin: true},
			EffectiveSeverity: sev, EffectiveThreshold: th,
		})
	}
	return out
}

// Policy is the override policy the set was compiled and checked with:
// what the stage after the engine applies.
func (s *Set) Policy() *policy.Policy { return s.policy }
