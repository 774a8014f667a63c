package detector

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// ReasonInfo is the static description of one reason a detector may
// report. Log rules carry the same metadata in their YAML; detectors
// declare it here so that config validation, docs/reasons.md and tests
// know their reasons without building or running the detector (a probe
// that does not apply to the build host, or NVML on a host without a GPU,
// would otherwise be invisible).
type ReasonInfo struct {
	// Reason may be a template ("${Unit}RepeatedRestart",
	// "NvidiaXID${xid}Error"), in the ${name} syntax of rule reasons.
	Reason    string
	Condition string
	// Severity is the default; config.yaml reasons.<Reason>.severity
	// overrides it.
	Severity finding.Severity
	// Detector is "probe:<name>" for a host probe, "nvml" for the NVIDIA
	// detector: the finding source, which also names the config section
	// that tunes it.
	Detector string
	// Period is how often the check runs by default (Go duration, e.g.
	// "5m"); empty for reasons raised as events arrive.
	Period string
	// Description says what the finding means, Action what an operator
	// should do, Recovery how an active finding ends. They are rendered
	// into docs/reasons.md.
	Description, Action, Recovery string
}

var (
	reasonsMu sync.Mutex
	described = map[string]ReasonInfo{}
	// matchers holds the templated reasons for Lookup.
	matchers = map[string]*regexp.Regexp{}
)

// templateRef is a ${name} reference in a reason template.
var templateRef = regexp.MustCompile(`\$\{[A-Za-z0-9_]+\}`)

// staticReason is what a reason must look like once its references are
// filled in: the rule compiler's own constraint, so that a detector reason
// can be named in config.yaml exactly like a rule reason.
var staticReason = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)

// Describe registers reasons; detector packages call it from init next to
// their registration. Bad metadata is a programming error found by any test
// or start of the binary, so it panics rather than returning an error
// nobody could act on at run time.
func Describe(infos ...ReasonInfo) {
	reasonsMu.Lock()
	defer reasonsMu.Unlock()
	for _, in := range infos {
		if err := validate(in); err != nil {
			panic("detector.Describe: " + err.Error())
		}
		if prev, dup := described[in.Reason]; dup {
			panic(fmt.Sprintf("detector.Describe: reason %s described twice (by %s and %s)", in.Reason, prev.Detector, in.Detector))
		}
		described[in.Reason] = in
		if strings.Contains(in.Reason, "${") {
			matchers[in.Reason] = matcher(in.Reason)
		}
	}
}

func validate(in ReasonInfo) error {
	if !staticReason.MatchString(templateRef.ReplaceAllString(in.Reason, "X")) {
		return fmt.Errorf("reason %q must start with a letter and hold only letters, digits, '-' and ${name} references", in.Reason)
	}
	if !finding.IsCondition(in.Condition) {
		return fmt.Errorf("reason %s: condition %q is not one of %s", in.Reason, in.Condition, strings.Join(finding.Conditions, ", "))
	}
	if _, err := finding.ParseSeverity(string(in.Severity)); err != nil {
		return fmt.Errorf("reason %s: %w", in.Reason, err)
	}
	if in.Detector == "" || strings.ContainsAny(in.Detector, " \t\n") {
		return fmt.Errorf("reason %s: detector %q must be a single word such as probe:<name> or nvml", in.Reason, in.Detector)
	}
	if in.Period != "" {
		if d, err := time.ParseDuration(in.Period); err != nil || d <= 0 {
			return fmt.Errorf("reason %s: period %q is not a positive Go duration", in.Reason, in.Period)
		}
	}
	for field, text := range map[string]string{"description": in.Description, "action": in.Action, "recovery": in.Recovery} {
		if strings.TrimSpace(text) == "" {
			return fmt.Errorf("reason %s: %s is empty (operators read it in docs/reasons.md)", in.Reason, field)
		}
	}
	return nil
}

// matcher turns "${Unit}RepeatedRestart" into ^.+RepeatedRestart$.
func matcher(tmpl string) *regexp.Regexp {
	parts := templateRef.Split(tmpl, -1)
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".+") + "$")
}

// Reasons returns every described reason, sorted by reason.
func Reasons() []ReasonInfo {
	reasonsMu.Lock()
	defer reasonsMu.Unlock()
	out := make([]ReasonInfo, 0, len(described))
	for _, in := range described {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Reason < out[j].Reason })
	return out
}

// ReasonNames returns the described reasons (templates as written), sorted;
// it is what the rule compiler needs to accept config overrides of them.
func ReasonNames() []string {
	infos := Reasons()
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Reason
	}
	return out
}

// Lookup finds the description of a reason as a finding carries it: the
// exact reason, or else the template it expands (KubeletRepeatedRestart →
// ${Unit}RepeatedRestart). A reason two templates could produce resolves
// to the first in sort order, so the answer is stable.
func Lookup(reason string) (ReasonInfo, bool) {
	reasonsMu.Lock()
	defer reasonsMu.Unlock()
	if in, ok := described[reason]; ok {
		return in, true
	}
	tmpls := make([]string, 0, len(matchers))
	for t := range matchers {
		tmpls = append(tmpls, t)
	}
	sort.Strings(tmpls)
	for _, t := range tmpls {
		if matchers[t].MatchString(reason) {
			return described[t], true
		}
	}
	return ReasonInfo{}, false
}
