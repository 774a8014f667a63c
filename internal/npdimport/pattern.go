package npdimport

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
)

// A restated pattern is an NPD pattern turned into one that nodehealthd's
// engine, which tests one record at a time, can match.
//
// NPD keeps the last bufferSize messages, joins them with "\n" and searches
// them with regexp.MustCompile(pattern + `\z`): a match may start anywhere
// in the buffer but must end at the end of the newest message. For a
// pattern that cannot match a line break, that is the same as searching the
// newest message alone with the pattern followed by `\z`, which is what the
// converted rule does. A pattern with line breaks is matched on its last
// line only.
type restated struct {
	// body is the pattern to match on one message, without NPD's end
	// anchor: a trailing `$` or `\z` is dropped, and flags set before
	// the last line are kept.
	body string
	// lines is the number of lines the NPD pattern spans.
	lines int
	// context is the part of a multi-line pattern before its last line.
	context string
	// topAlt: body is a top-level alternation, whose last alternative
	// alone is anchored at the end (NPD appends `\z` without grouping).
	topAlt bool
	// beginText: body uses `^` or `\A`.
	beginText bool
	// notes say how the converted rule differs from NPD's.
	notes []string
}

// skipError says why a rule cannot be converted.
type skipError struct{ msg string }

func (e skipError) Error() string { return e.msg }

func skipf(format string, args ...any) error { return skipError{fmt.Sprintf(format, args...)} }

// restate works out how to match NPD pattern p, searched by NPD in a buffer
// of bufferSize lines, on one message. A skipError says it cannot be; any
// other error is a pattern NPD itself refuses.
func restate(p string, bufferSize int) (restated, error) {
	if _, err := regexp.Compile(p + `\z`); err != nil {
		return restated{}, fmt.Errorf("pattern %q: %w", p, err)
	}
	if p == "" {
		return restated{}, skipf("empty pattern: it matches every line")
	}
	l := scan(p)
	if l.openQuote {
		return restated{}, skipf(`pattern ends inside \Q…: NPD's appended end anchor is quoted with it, so NPD never matches`)
	}
	r := restated{body: p, lines: 1, topAlt: l.topAlt}
	if len(l.breaks) > 0 {
		if l.topAlt {
			return restated{}, skipf("line break in a top-level alternation: give each alternative its own NPD rule")
		}
		r.lines = len(l.breaks) + 1
		if r.lines > bufferSize {
			return restated{}, skipf("pattern spans %d lines but bufferSize is %d: NPD never matches", r.lines, bufferSize)
		}
		last := l.breaks[len(l.breaks)-1]
		lastLine := p[last[1]:]
		if lastLine == "" {
			return restated{}, skipf("pattern ends with a line break: its last line is empty, nothing to match a message on")
		}
		r.body = l.flagText(p, last[0]) + lastLine
		r.context = p[:last[0]]
		if _, err := regexp.Compile(r.body); err != nil {
			return restated{}, skipf("cannot split the pattern at its line breaks (%v): write each line as its own group-free part", err)
		}
		r.topAlt = scan(r.body).topAlt
	}
	tree, err := syntax.Parse(r.body, syntax.Perl)
	if err != nil {
		return restated{}, skipf("%v", err)
	}
	if has(tree, isNewlineLiteral) {
		return restated{}, skipf(`line break inside a group, or written other than \n: cannot tell the pattern's lines apart`)
	}
	r.beginText = has(tree, func(re *syntax.Regexp) bool { return re.Op == syntax.OpBeginText })
	switch {
	case r.beginText && r.lines > 1:
		return restated{}, skipf("`^` or `\\A` after a line break: NPD never matches")
	case r.beginText && bufferSize > 1:
		r.notes = append(r.notes, fmt.Sprintf("`^` or `\\A` is the start of NPD's %d-line buffer, so NPD never matched this rule; converted as the start of the line", bufferSize))
	}
	if r.lines > 1 {
		r.notes = append(r.notes, fmt.Sprintf("%d-line pattern: matched on its last line %q alone; the earlier lines %q are no longer required", r.lines, r.body, r.context))
	}
	if has(tree, canMatchNewline) {
		r.notes = append(r.notes, "`\\s`, a negated class or `(?s).` can match a line break: NPD can match across buffered lines, the converted rule within one line")
	}
	r.body = trimEndAnchor(r.body)
	return r, nil
}

// has reports whether pred holds for re or any of its parts.
func has(re *syntax.Regexp, pred func(*syntax.Regexp) bool) bool {
	if pred(re) {
		return true
	}
	for _, s := range re.Sub {
		if has(s, pred) {
			return true
		}
	}
	return false
}

func isNewlineLiteral(re *syntax.Regexp) bool {
	return re.Op == syntax.OpLiteral && strings.ContainsRune(string(re.Rune), '\n')
}

// canMatchNewline: a class or dot that accepts a line break (Go's Perl
// syntax lets `\s` and negated classes do so).
func canMatchNewline(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpAnyChar:
		return true
	case syntax.OpCharClass:
		return classHas(re, '\n')
	}
	return false
}

func classHas(re *syntax.Regexp, c rune) bool {
	for i := 0; i+1 < len(re.Rune); i += 2 {
		if re.Rune[i] <= c && c <= re.Rune[i+1] {
			return true
		}
	}
	return false
}

// lineRule is the pattern for a kmsg or journal rule. NPD trims the white
// space around each kernel and journal message; `\s*` before the end anchor
// lets the trailing part through, as journal messages are cut of it anyway
// but kernel messages are not. With a message suffix the whole message is
// captured as npdline for the message template.
func lineRule(r restated, suffix bool) (pattern, capture string) {
	if !suffix {
		return r.body + `\s*\z`, ""
	}
	capture = freeName(r.body, "npdline")
	return `^(?P<` + capture + `>(?s:.*?)(?:` + r.body + `\s*\z)(?s:.*))`, capture
}

// freeName returns a capture name the pattern does not use.
func freeName(p, name string) string {
	re := regexp.MustCompile(p)
	for n := 1; ; n++ {
		cand := name
		if n > 1 {
			cand = fmt.Sprintf("%s%d", name, n)
		}
		if re.SubexpIndex(cand) < 0 {
			return cand
		}
	}
}

// messageRegexp is a filelog plugin's message regex, and where in it the
// message is: NPD uses the highest-numbered capture group.
type messageRegexp struct {
	text       string
	open, shut int // offsets of the message group's parentheses
	group      int // its number
	flagged    bool
	// tail pins the end of the message group where NPD's greedy group
	// ends it: at the end of the line, or at the last occurrence of the
	// one character that follows the group.
	tail string
	// ambiguous: the regex can take a line's message in more than one
	// way that tail does not pin: a repetition or alternative outside the
	// message group, or more than one character after it. NPD uses the way
	// Go's regexp prefers for the message regex alone; the converted
	// rule's single regexp may pick another one that lets the pattern
	// match.
	ambiguous bool
}

// parseMessageRegexp checks that NPD's message regex can carry a rule's
// pattern: its message group must take any text of a line (`(.*)`,
// `([^\n]*)`), so that "the group matches and the NPD pattern matches at
// the end of what it took" can be written as one regexp.
func parseMessageRegexp(m string) (messageRegexp, error) {
	tree, err := syntax.Parse(m, syntax.Perl)
	if err != nil {
		return messageRegexp{}, fmt.Errorf("message regex %q: %w", m, err)
	}
	l := scan(m)
	n := tree.MaxCap()
	if n == 0 {
		return messageRegexp{}, skipf("message regex %q has no capture group, so NPD's message is its whole match, which a single pattern cannot restate: add a group such as (.*) around the message", m)
	}
	if len(l.captures) != n || l.openQuote {
		return messageRegexp{}, skipf("cannot locate the message group of message regex %q", m)
	}
	g := findCap(tree, n)
	if g == nil || !anyLineText(g.Sub[0]) || g.Sub[0].Flags&syntax.NonGreedy != 0 {
		return messageRegexp{}, skipf("message group %d of message regex %q does not take any text of a line like (.*) or ([^\\n]*): a pattern cannot be restated inside it", n, m)
	}
	c := l.captures[n-1]
	mr := messageRegexp{text: m, open: c[0], shut: c[1], group: n, flagged: strings.Contains(m, "(?")}
	mr.ambiguous = has(cutCap(tree, n), func(re *syntax.Regexp) bool {
		switch re.Op {
		case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat, syntax.OpAlternate:
			return true
		}
		return false
	})
	// A file line has no line break, so the greedy group runs to the end
	// of the line, or to the last occurrence of a single character that
	// must follow it.
	switch after := strings.TrimSuffix(m[c[1]+1:], "$"); after {
	case "":
		mr.tail = `\z`
	default:
		lit, err := syntax.Parse(after, syntax.Perl)
		if err == nil && lit.Op == syntax.OpLiteral && len(lit.Rune) == 1 && lit.Flags&syntax.FoldCase == 0 {
			mr.tail = notChar(lit.Rune[0]) + `*\z`
		} else {
			mr.ambiguous = true
		}
	}
	return mr, nil
}

// notChar is a class of every character but c.
func notChar(c rune) string {
	if strings.ContainsRune(`\]^-[`, c) || !unicode.IsPrint(c) {
		return fmt.Sprintf(`[^\x{%x}]`, c)
	}
	return `[^` + string(c) + `]`
}

// cutCap returns a copy of re without capture group n.
func cutCap(re *syntax.Regexp, n int) *syntax.Regexp {
	cp := *re
	cp.Sub = nil
	for _, s := range re.Sub {
		if s.Op == syntax.OpCapture && s.Cap == n {
			continue
		}
		cp.Sub = append(cp.Sub, cutCap(s, n))
	}
	return &cp
}

func findCap(re *syntax.Regexp, n int) *syntax.Regexp {
	if re.Op == syntax.OpCapture && re.Cap == n {
		return re
	}
	for _, s := range re.Sub {
		if c := findCap(s, n); c != nil {
			return c
		}
	}
	return nil
}

// anyLineText: re matches every string without a line break.
func anyLineText(re *syntax.Regexp) bool {
	if re.Op != syntax.OpStar && re.Op != syntax.OpPlus {
		return false
	}
	switch s := re.Sub[0]; s.Op {
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return true
	case syntax.OpCharClass:
		return classCovers(s, 0, '\n'-1) && classCovers(s, '\n'+1, unicode.MaxRune)
	}
	return false
}

// classCovers: the class holds every rune of [lo, hi]. Its ranges are
// sorted and do not touch.
func classCovers(re *syntax.Regexp, lo, hi rune) bool {
	for i := 0; i+1 < len(re.Rune); i += 2 {
		if re.Rune[i] <= lo && hi <= re.Rune[i+1] {
			return true
		}
	}
	return false
}

// fileRule is the pattern for a filelog rule: the raw line must match the
// message regex with the NPD pattern at the end of the message group.
func fileRule(m messageRegexp, r restated) (string, error) {
	if r.topAlt {
		return "", skipf("top-level `|` in a filelog rule: NPD anchors only its last alternative to the end of the message, which cannot be restated inside the message regex; give each alternative its own NPD rule")
	}
	tree, err := syntax.Parse(r.body, syntax.Perl)
	if err != nil {
		return "", skipf("%v", err)
	}
	if has(tree, func(re *syntax.Regexp) bool {
		switch re.Op {
		case syntax.OpBeginText, syntax.OpBeginLine, syntax.OpEndText, syntax.OpEndLine:
			return true
		}
		return false
	}) {
		return "", skipf("`^`, `$`, `\\A` or `\\z` inside a filelog rule's pattern would refer to the line, not NPD's message, once the pattern is inside the message regex")
	}
	// The lazy prefix lets the NPD pattern start anywhere in the message;
	// the group's end is the message's end. The message regex's flags
	// must not reach either.
	content := `.*?` + r.body
	if m.flagged {
		content = `(?-imsU:` + content + `)`
	}
	return m.text[:m.open+1] + content + m.text[m.shut:] + m.tail, nil
}
