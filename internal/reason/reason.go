// Package reason declares the reasons that detectors other than log rules
// report: host probes, NVML, the daemon's own checks, diagnostics uploads.
// Each is one typed Go declaration (name, condition, default severity,
// detector, default period and the texts operators read) from which its
// detector builds results, config validation accepts overrides of it, and
// docs/reasons.md and `nodehealthctl rules list` describe it, without
// building or running the detector (a probe that does not apply to the
// build host, or NVML on a host without a GPU, would otherwise be
// invisible). Log rules declare theirs in YAML (internal/rules/catalogue).
package reason

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// Reason is the declaration of one reason a detector may report.
type Reason struct {
	// Name may be a template ("${Unit}RepeatedRestart",
	// "NvidiaXID${xid}Error"), in the ${name} syntax of rule reasons.
	Name      string
	Condition string
	// Severity is the default; config.yaml reasons.<Name>.severity
	// overrides it (internal/policy).
	Severity finding.Severity
	// Detector is "probe:<name>" for a host probe, "nvml" for the NVIDIA
	// detector: the finding source, which also names the config section
	// that tunes it.
	Detector string
	// Period is how often the check runs by default; 0 for reasons raised
	// as events arrive.
	Period time.Duration
	// Description says what the finding means, Action what an operator
	// should do, Recovery how an active finding ends. They are rendered
	// into docs/reasons.md.
	Description, Action, Recovery string
}

// Result is one occurrence of a reason: what a check found now. Key tells
// instances apart (an interface, a device, a unit); detectors track
// results per (Reason, Key).
type Result struct {
	Condition string
	Reason    string
	Severity  finding.Severity
	Message   string
	Key       string
}

// Result is an occurrence of r with its default condition and severity.
func (r *Reason) Result(message, key string) Result {
	return r.Instance(r.Name, message, key)
}

// Instance is Result for a templated reason, under the name it expands to
// (${Unit}RepeatedRestart as KubeletRepeatedRestart).
func (r *Reason) Instance(name, message, key string) Result {
	return Result{Condition: r.Condition, Reason: name, Severity: r.Severity, Message: message, Key: key}
}

// Finding is res as the finding its detector raises: the observation the
// policy stage (internal/policy) turns into what is recorded.
func (res Result) Finding(rule, source string, at time.Time) finding.Finding {
	return finding.Finding{
		Condition: res.Condition, Reason: res.Reason, Severity: res.Severity, Message: res.Message, Key: res.Key,
		Rule: rule, Source: source, Detected: at, LastSeen: at, Count: 1,
	}
}

var (
	mu       sync.Mutex
	declared = map[string]*Reason{}
)

// Declare registers r and returns it for its detector to build results
// from. Detector packages call it in package variable declarations. Bad
// metadata is a programming error found by any test or start of the
// binary, so it panics rather than returning an error nobody could act on
// at run time.
func Declare(r Reason) *Reason {
	mu.Lock()
	defer mu.Unlock()
	if err := check(r); err != nil {
		panic("reason.Declare: " + err.Error())
	}
	if prev, dup := declared[r.Name]; dup {
		panic(fmt.Sprintf("reason.Declare: reason %s declared twice (by %s and %s)", r.Name, prev.Detector, r.Detector))
	}
	declared[r.Name] = &r
	return &r
}

// declRef is a ${name} reference in a declared reason. Rule reasons also
// accept $name (regexp.Expand's syntax); declarations keep to the one form.
var declRef = regexp.MustCompile(`\$\{[A-Za-z0-9_]+\}`)

func check(r Reason) error {
	if !Plain(declRef.ReplaceAllString(r.Name, "X")) {
		return fmt.Errorf("reason %q must start with a letter and hold only letters, digits, '-' and ${name} references", r.Name)
	}
	if !finding.IsCondition(r.Condition) {
		return fmt.Errorf("reason %s: condition %q is not one of %s", r.Name, r.Condition, strings.Join(finding.Conditions, ", "))
	}
	if _, err := finding.ParseSeverity(string(r.Severity)); err != nil {
		return fmt.Errorf("reason %s: %w", r.Name, err)
	}
	if r.Detector == "" || strings.ContainsAny(r.Detector, " \t\n") {
		return fmt.Errorf("reason %s: detector %q must be a single word such as probe:<name> or nvml", r.Name, r.Detector)
	}
	if r.Period < 0 {
		return fmt.Errorf("reason %s: period %v is negative", r.Name, r.Period)
	}
	for field, text := range map[string]string{"description": r.Description, "action": r.Action, "recovery": r.Recovery} {
		if strings.TrimSpace(text) == "" {
			return fmt.Errorf("reason %s: %s is empty (operators read it in docs/reasons.md)", r.Name, field)
		}
	}
	return nil
}

// All returns every declared reason, sorted by name.
func All() []Reason {
	mu.Lock()
	defer mu.Unlock()
	out := make([]Reason, 0, len(declared))
	for _, r := range declared {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b Reason) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Of returns the names of the reasons declared for detector, sorted: what
// it may report.
func Of(detector string) []string {
	var out []string
	for _, r := range All() {
		if r.Detector == detector {
			out = append(out, r.Name)
		}
	}
	return out
}

// Declared returns the set of declared reasons, for config validation.
func Declared() Set {
	var s Set
	for _, r := range All() {
		s.Add(r.Name)
	}
	return s
}

// Lookup finds the declaration of a reason as a finding carries it: the
// exact reason, or else the template it expands (KubeletRepeatedRestart →
// ${Unit}RepeatedRestart). A reason two templates could produce resolves
// to the first in sort order, so the answer is stable.
func Lookup(name string) (Reason, bool) {
	all := All()
	for _, r := range all {
		if r.Name == name {
			return r, true
		}
	}
	for _, r := range all {
		if len(Refs(r.Name)) > 0 && Matcher(r.Name).MatchString(name) {
			return r, true
		}
	}
	return Reason{}, false
}

// plainRE is what a reason must look like once its references are filled
// in, so that any reason can be named in config.yaml and sent to the
// Kubernetes API.
var plainRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)

// Plain reports whether s is a reason without references: a letter, then
// letters, digits and '-'.
func Plain(s string) bool { return plainRE.MatchString(s) }

// ref finds $name, ${name} and $1 references in a template, as
// regexp.Expand reads them ($$ is a literal dollar).
var ref = regexp.MustCompile(`\$(?:\{([^}]*)\}|([A-Za-z0-9_]+))`)

// Refs returns the names a template refers to, in order.
func Refs(tmpl string) []string {
	var refs []string
	for _, m := range ref.FindAllStringSubmatchIndex(strings.ReplaceAll(tmpl, "$$", "__"), -1) {
		if m[2] >= 0 {
			refs = append(refs, tmpl[m[2]:m[3]])
		} else {
			refs = append(refs, tmpl[m[4]:m[5]])
		}
	}
	return refs
}

// Expand fills a template's references with value(name), as regexp.Expand
// fills them from a match ($$ is a literal dollar).
func Expand(tmpl string, value func(name string) string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '$')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		b.WriteString(tmpl[:i])
		tmpl = tmpl[i:]
		if strings.HasPrefix(tmpl, "$$") {
			b.WriteByte('$')
			tmpl = tmpl[2:]
			continue
		}
		m := ref.FindStringSubmatchIndex(tmpl)
		if m == nil || m[0] != 0 {
			b.WriteByte('$')
			tmpl = tmpl[1:]
			continue
		}
		if m[2] >= 0 {
			b.WriteString(value(tmpl[m[2]:m[3]]))
		} else {
			b.WriteString(value(tmpl[m[4]:m[5]]))
		}
		tmpl = tmpl[m[1]:]
	}
}

// Fill replaces every reference of a template with s, e.g. to check that
// the rest is a plain reason.
func Fill(tmpl, s string) string { return ref.ReplaceAllString(tmpl, s) }

// Matcher turns a template ("NvidiaXID${xid}Error") into the regexp of the
// reasons it expands to (^NvidiaXID.+Error$).
func Matcher(tmpl string) *regexp.Regexp {
	parts := ref.Split(tmpl, -1)
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".+") + "$")
}

// Set answers whether a reason, as a finding carries it, is one that a set
// of reasons and reason templates can produce. The zero value is empty.
type Set struct {
	static    map[string]bool
	templates []*regexp.Regexp
}

// Add adds a reason or a template.
func (s *Set) Add(name string) {
	if len(Refs(name)) > 0 {
		s.templates = append(s.templates, Matcher(name))
		return
	}
	if s.static == nil {
		s.static = map[string]bool{}
	}
	s.static[name] = true
}

// Has reports whether the set produces reason.
func (s Set) Has(reason string) bool {
	if s.static[reason] {
		return true
	}
	for _, t := range s.templates {
		if t.MatchString(reason) {
			return true
		}
	}
	return false
}
