// Package npdimport converts node-problem-detector system-log-monitor
// configs (kernel-monitor.json, docker-monitor.json and custom ones) into a
// nodehealthd rules file, so that a cluster can move without rewriting its
// rules. docs/rules.md ("Moving from node-problem-detector") describes the
// mapping and what differs; every difference a conversion makes is also
// reported as an Issue.
package npdimport

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/problems"
	"github.com/nodehealthd/nodehealthd/internal/rules"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

// Options adjusts a conversion.
type Options struct {
	// ConditionMap maps NPD condition types (of permanent rules) and
	// reasons (of temporary rules) to nodehealthd conditions, before the
	// built-in KnownConditions and KnownEventReasons.
	ConditionMap map[string]string
}

// Input is one NPD config file.
type Input struct {
	// Name names the file in issues and errors (the path as given).
	Name string
	Data []byte
}

// Issue is a construct that was left out (Skipped) or converted with a
// difference from NPD's behaviour (a note).
type Issue struct {
	File string
	// Line is where the rule starts, 0 when unknown or for the file.
	Line int
	// Rule is the 1-based index of the NPD rule, 0 for the file.
	Rule    int
	Reason  string
	Skipped bool
	Msg     string
}

// String reads "file:line: rule N (Reason): skipped: why", one line.
func (i Issue) String() string {
	var b strings.Builder
	b.WriteString(i.File)
	if i.Line > 0 {
		fmt.Fprintf(&b, ":%d", i.Line)
	}
	if i.Rule > 0 {
		fmt.Fprintf(&b, ": rule %d", i.Rule)
		if i.Reason != "" {
			fmt.Fprintf(&b, " (%s)", i.Reason)
		}
	}
	if i.Skipped {
		b.WriteString(": skipped: ")
	} else {
		b.WriteString(": note: ")
	}
	b.WriteString(strings.ReplaceAll(i.Msg, "\n", `\n`))
	return b.String()
}

// Result is a conversion: the rules file and what it could not keep.
type Result struct {
	Rules *rules.File
	// Files are the base names of the inputs, for the header.
	Files  []string
	Issues []Issue
	// comments are the provenance comments of the rules, by name.
	comments map[string]string
	// origins are the NPD rules the rules come from, by name.
	origins map[string]Issue
}

// Skipped reports whether some construct was left out.
func (r *Result) Skipped() bool {
	return slices.ContainsFunc(r.Issues, func(i Issue) bool { return i.Skipped })
}

// Convert converts NPD system-log-monitor configs into one rules file. An
// error means invalid input: a file NPD itself would refuse (bad JSON, a
// pattern that does not compile, a plugin config it cannot start with) or
// one of another kind; it lists every such problem and nothing is
// converted. Otherwise the rules validate together with the built-in
// catalogue, and Issues lists what was left out or differs.
func Convert(inputs []Input, opts Options) (*Result, error) {
	cat, err := rules.Catalogue()
	if err != nil {
		return nil, fmt.Errorf("built-in catalogue: %w", err)
	}
	configs := make([]*monitorConfig, len(inputs))
	var errs []error
	for i, in := range inputs {
		c, err := parseConfig(in.Name, in.Data)
		if err == nil {
			err = checkPatterns(in, c)
		}
		if err != nil {
			errs = append(errs, err)
		}
		configs[i] = c
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cv := &converter{
		opts:     opts,
		res:      &Result{Rules: &rules.File{}, comments: map[string]string{}, origins: map[string]Issue{}},
		names:    map[string]bool{},
		builtins: map[string][]string{},
	}
	for _, r := range cat.Rules {
		cv.names[r.EffectiveName()] = true
		cv.builtins[r.Reason] = append(cv.builtins[r.Reason], r.EffectiveName())
	}
	for i, in := range inputs {
		cv.res.Files = append(cv.res.Files, filepath.Base(in.Name))
		cv.file(in, configs[i])
	}
	if err := cv.validate(cat); err != nil {
		return nil, err
	}
	return cv.res, nil
}

// checkPatterns refuses the patterns and regexes NPD refuses to start with.
func checkPatterns(in Input, c *monitorConfig) error {
	var errs []error
	for i, r := range c.Rules {
		if _, err := regexp.Compile(r.Pattern + `\z`); err != nil {
			errs = append(errs, fmt.Errorf("%s: rule %d (%s): pattern %q: %w", ruleAt(in.Name, c, i), i+1, r.Reason, r.Pattern, err))
		}
	}
	if c.Plugin == "filelog" {
		for _, k := range []string{"timestamp", "message"} {
			if _, err := regexp.Compile(c.PluginConfig[k]); err != nil {
				errs = append(errs, fmt.Errorf("%s: pluginConfig.%s %q: %w", in.Name, k, c.PluginConfig[k], err))
			}
		}
	}
	return errors.Join(errs...)
}

func ruleAt(name string, c *monitorConfig, i int) string {
	if i < len(c.ruleLines) {
		return fmt.Sprintf("%s:%d", name, c.ruleLines[i])
	}
	return name
}

type converter struct {
	opts  Options
	res   *Result
	names map[string]bool
	// builtins are the catalogue's rule names by reason.
	builtins map[string][]string
}

// fileNote adds a note about the file as a whole.
func (cv *converter) fileNote(name, format string, args ...any) {
	cv.res.Issues = append(cv.res.Issues, Issue{File: name, Msg: fmt.Sprintf(format, args...)})
}

// fileSource is where a config's rules read and how their patterns are
// restated.
type fileSource struct {
	kind    source.Kind
	idents  []string
	paths   []string
	exclude []string
	message *messageRegexp // filelog
	// skip, when set, is why no rule of the file converts.
	skip error
}

func (cv *converter) source(in Input, c *monitorConfig) fileSource {
	var s fileSource
	switch c.Plugin {
	case "kmsg":
		s.kind = source.KindKmsg
	case "journald":
		s.kind = source.KindJournal
		s.idents = []string{c.PluginConfig["source"]}
		switch c.LogPath {
		case "", "/var/log/journal", "/run/log/journal":
		default:
			cv.fileNote(in.Name, "logPath %q: nodehealthd reads the host's system journal (/var/log/journal and /run/log/journal)", c.LogPath)
		}
	case "filelog":
		s.kind = source.KindFile
		s.paths = []string{c.LogPath}
		if !filepath.IsAbs(c.LogPath) {
			s.skip = skipf("logPath %q is not an absolute path", c.LogPath)
			break
		}
		for _, item := range c.SkipList {
			s.exclude = append(s.exclude, regexp.QuoteMeta(item))
		}
		m, err := parseMessageRegexp(c.PluginConfig["message"])
		if err != nil {
			s.skip = err
			break
		}
		s.message = &m
		if m.ambiguous {
			cv.fileNote(in.Name, "pluginConfig.message %q can take a line's message in more than one way (a repetition or alternative outside its last group, or more than one character after it): NPD takes the first way, the converted rules any way that lets their pattern match, so they can report lines NPD does not", m.text)
		}
		cv.fileNote(in.Name, "pluginConfig.timestamp and timestampFormat are not used: nodehealthd times a file line when it reads it, and also matches lines NPD drops for a missing or unparseable timestamp")
	}
	if len(c.SkipList) > 0 && c.Plugin != "filelog" {
		cv.fileNote(in.Name, "skipList: NPD's %s watcher ignores it, and so do the converted rules", c.Plugin)
	}
	for _, k := range slices.Sorted(maps.Keys(c.PluginConfig)) {
		if !slices.Contains(pluginKeys[c.Plugin], k) {
			cv.fileNote(in.Name, "pluginConfig.%s: not a %s plugin setting; ignored, as NPD ignores it", k, c.Plugin)
		}
	}
	return s
}

func (cv *converter) file(in Input, c *monitorConfig) {
	for _, k := range c.unknown {
		cv.fileNote(in.Name, "field %s: not an NPD system-log-monitor field; ignored, as NPD ignores it", k)
	}
	if c.Delay != "" {
		cv.fileNote(in.Name, "delay %s: NPD ignores the messages of the first %s after boot; the converted rules match them", c.Delay, c.Delay)
	}
	if c.MetricsReporting != nil && !*c.MetricsReporting {
		cv.fileNote(in.Name, "metricsReporting false: nodehealthd always counts findings in its metrics")
	}
	src := cv.source(in, c)
	if src.skip != nil {
		cv.res.Issues = append(cv.res.Issues, Issue{File: in.Name, Skipped: true, Msg: fmt.Sprintf("every rule of the file (%d): %v", len(c.Rules), src.skip)})
		return
	}
	declared := map[string]bool{}
	for _, cond := range c.Conditions {
		declared[cond.Type] = true
	}
	used := map[string]string{} // NPD condition → ours, of converted permanent rules
	line := func(i int) int {
		if i < len(c.ruleLines) {
			return c.ruleLines[i]
		}
		return 0
	}
	for i, nr := range c.Rules {
		issue := func(skipped bool, msg string) {
			cv.res.Issues = append(cv.res.Issues, Issue{File: in.Name, Line: line(i), Rule: i + 1, Reason: nr.Reason, Skipped: skipped, Msg: msg})
		}
		r, notes, err := cv.rule(in, c, i, src, declared)
		if err != nil {
			issue(true, err.Error())
			continue
		}
		for _, n := range notes {
			issue(false, n)
		}
		if nr.Type == "permanent" {
			used[nr.Condition] = r.Condition
		}
		cv.res.origins[r.Name] = Issue{File: in.Name, Line: line(i), Rule: i + 1, Reason: nr.Reason}
		cv.res.Rules.Rules = append(cv.res.Rules.Rules, r)
	}
	for _, cond := range c.Conditions {
		if ours, ok := used[cond.Type]; ok {
			cv.fileNote(in.Name, "condition %s: its rules set %s False instead, with their own reason (node repair automation acts on it); %s and its healthy reason %s are not written to the Node", cond.Type, ours, cond.Type, cond.Reason)
		} else {
			cv.fileNote(in.Name, "condition %s: no converted rule sets it; not converted (NPD keeps it on the Node with reason %s)", cond.Type, cond.Reason)
		}
	}
}

var reasonRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)

// rule converts rule i of config c, or says why it cannot.
func (cv *converter) rule(in Input, c *monitorConfig, i int, src fileSource, declared map[string]bool) (rules.Rule, []string, error) {
	nr := c.Rules[i]
	var notes []string
	if !reasonRE.MatchString(nr.Reason) {
		return rules.Rule{}, nil, skipf("reason %q: a nodehealthd reason starts with a letter and holds only letters, digits and '-'", nr.Reason)
	}
	r := rules.Rule{
		Reason:      nr.Reason,
		Source:      string(src.kind),
		Identifiers: src.idents,
		Paths:       src.paths,
		Exclude:     src.exclude,
	}
	kind := "temporary"
	switch nr.Type {
	case "temporary":
		r.Severity = string(finding.Warning)
		r.Condition = cv.opts.eventCondition(nr.Reason, src.kind, src.idents)
		if r.Condition == "" {
			return rules.Rule{}, nil, skipf("no condition to file the %s event under; choose one with --condition-map %s=<condition>", nr.Reason, nr.Reason)
		}
	case "permanent":
		kind = "permanent, condition " + nr.Condition
		r.Severity = string(finding.Fatal)
		switch {
		case nr.Condition == "":
			return rules.Rule{}, nil, skipf("permanent rule without a condition: NPD never reports it")
		case !declared[nr.Condition]:
			return rules.Rule{}, nil, skipf("condition %q is not declared under conditions, so NPD never reports this rule; declare it to convert the rule", nr.Condition)
		}
		r.Condition = cv.opts.permanentCondition(nr.Condition)
		if r.Condition == "" {
			return rules.Rule{}, nil, skipf("condition %s has no nodehealthd condition; choose one with --condition-map %s=<condition> (%s)", nr.Condition, nr.Condition, strings.Join(finding.Conditions, ", "))
		}
	default:
		return rules.Rule{}, nil, skipf("type %q is neither temporary nor permanent (NPD treats it as permanent); set the type", nr.Type)
	}
	rs, err := restate(nr.Pattern, c.BufferSize)
	if err != nil {
		return rules.Rule{}, nil, err
	}
	notes = append(notes, rs.notes...)
	if src.message != nil {
		p, err := fileRule(*src.message, rs)
		if err != nil {
			return rules.Rule{}, nil, err
		}
		r.Patterns = []string{p}
		if nr.Suffix != "" {
			r.Message = fmt.Sprintf("${%d}; %s", src.message.group, escapeTemplate(nr.Suffix))
		}
	} else {
		p, capture := lineRule(rs, nr.Suffix != "")
		r.Patterns = []string{p}
		if capture != "" {
			r.Message = "${" + capture + "}; " + escapeTemplate(nr.Suffix)
		}
	}
	if names := cv.builtins[nr.Reason]; len(names) > 0 {
		notes = append(notes, fmt.Sprintf("%s is also a built-in reason (rule %s): both rules may report the same line, and reasons.%s in config.yaml applies to both", nr.Reason, strings.Join(names, ", "), nr.Reason))
	}
	base := filepath.Base(in.Name)
	r.Name = cv.name(base, nr.Reason)
	r.Description = fmt.Sprintf("Converted from node-problem-detector %s rule %d (%s).", base, i+1, kind)
	if rs.lines > 1 {
		r.Description += fmt.Sprintf(" NPD's pattern spans %d lines; this rule matches its last line and does not require the earlier ones.", rs.lines)
	}
	cv.res.comments[r.Name] = fmt.Sprintf("%s rule %d: NPD pattern %s", base, i+1, strconv.Quote(nr.Pattern))
	return r, notes, nil
}

// escapeTemplate keeps a literal message suffix literal in a rule's
// message template.
func escapeTemplate(s string) string { return strings.ReplaceAll(s, "$", "$$") }

var nameJunk = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// name is "npd-<file>-<reason>", made unique across the catalogue and the
// rules converted so far.
func (cv *converter) name(base, reason string) string {
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	stem = strings.Trim(nameJunk.ReplaceAllString(stem, "-"), "-.")
	n := "npd-" + stem + "-" + reason
	if stem == "" {
		n = "npd-" + reason
	}
	out := n
	for k := 2; cv.names[out]; k++ {
		out = fmt.Sprintf("%s-%d", n, k)
	}
	cv.names[out] = true
	return out
}

// validate compiles the converted rules with the catalogue, as the daemon
// will, and leaves out (with an issue) any rule that does not compile, so
// that what is written always loads.
func (cv *converter) validate(cat *rules.File) error {
	for range 2 {
		b, err := cv.res.YAML()
		if err != nil {
			return err
		}
		f, err := rules.Parse(b, "import-npd")
		if err == nil {
			_, err = rules.Compile(rules.Merge(cat, f), rules.Options{})
		}
		if err == nil {
			return nil
		}
		bad := map[string]string{}
		for _, p := range problems.List(err) {
			pr, ok := errors.AsType[*problems.Problem](p)
			if !ok || pr.Rule == "" || !strings.HasPrefix(pr.Rule, "npd-") {
				return fmt.Errorf("converted rules do not validate: %w", err)
			}
			bad[pr.Rule] = pr.Err.Error()
		}
		kept := cv.res.Rules.Rules[:0]
		for _, r := range cv.res.Rules.Rules {
			if why, ok := bad[r.Name]; ok {
				is := cv.res.origins[r.Name]
				is.Skipped, is.Msg = true, "the converted rule does not validate: "+why
				cv.res.Issues = append(cv.res.Issues, is)
				delete(cv.res.comments, r.Name)
				continue
			}
			kept = append(kept, r)
		}
		cv.res.Rules.Rules = kept
	}
	return errors.New("converted rules do not validate")
}
