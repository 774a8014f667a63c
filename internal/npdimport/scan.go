package npdimport

import (
	"regexp"
	"strings"
)

// layout is what the converter needs to know about the text of an NPD
// pattern: where its top-level line breaks are, whether it is a top-level
// alternation, its top-level flag groups and its capture groups. It is read
// from the text, not the parsed tree, so that converted patterns keep the
// operator's spelling.
type layout struct {
	// breaks are the [start, end) byte spans of line breaks (`\n` or a raw
	// newline) outside any group or class.
	breaks [][2]int
	// topAlt: a `|` outside any group.
	topAlt bool
	// flags are the [start, end) spans of top-level `(?i)`-style groups,
	// which set flags up to the end of the pattern.
	flags [][2]int
	// captures are the [open, close] offsets of the parentheses of each
	// capturing group, in group-number order.
	captures [][2]int
	// openQuote: a `\Q` without its `\E` quotes the rest of the pattern.
	openQuote bool
}

var flagGroupRE = regexp.MustCompile(`^\(\?[imsU-]+\)`)

// scan reads the layout of a pattern that compiles.
func scan(p string) layout {
	var l layout
	var open []int // offsets of open parentheses; -1 for non-capturing
	for i := 0; i < len(p); {
		switch c := p[i]; c {
		case '\\':
			if i+1 >= len(p) {
				return l
			}
			switch p[i+1] {
			case 'Q':
				end := strings.Index(p[i+2:], `\E`)
				if end < 0 {
					l.openQuote = true
					return l
				}
				i += 2 + end + 2
				continue
			case 'n':
				if len(open) == 0 {
					l.breaks = append(l.breaks, [2]int{i, i + 2})
				}
			}
			i += 2
			continue
		case '[':
			i = classEnd(p, i)
			continue
		case '(':
			if len(open) == 0 {
				if m := flagGroupRE.FindString(p[i:]); m != "" {
					l.flags = append(l.flags, [2]int{i, i + len(m)})
					i += len(m)
					continue
				}
			}
			capturing := !strings.HasPrefix(p[i:], "(?") || strings.HasPrefix(p[i:], "(?P<") || strings.HasPrefix(p[i:], "(?<")
			if capturing {
				l.captures = append(l.captures, [2]int{i, -1})
				open = append(open, len(l.captures)-1)
			} else {
				open = append(open, -1)
			}
		case ')':
			if n := len(open); n > 0 {
				if g := open[n-1]; g >= 0 {
					l.captures[g][1] = i
				}
				open = open[:n-1]
			}
		case '|':
			if len(open) == 0 {
				l.topAlt = true
			}
		case '\n':
			if len(open) == 0 {
				l.breaks = append(l.breaks, [2]int{i, i + 1})
			}
		}
		i++
	}
	return l
}

// classEnd returns the offset just past the character class opening at i.
// A `]` right after `[` or `[^` is a literal, as are escapes and `[:name:]`.
func classEnd(p string, i int) int {
	k := i + 1
	if k < len(p) && p[k] == '^' {
		k++
	}
	if k < len(p) && p[k] == ']' {
		k++
	}
	for k < len(p) {
		switch {
		case p[k] == '\\':
			k += 2
		case strings.HasPrefix(p[k:], "[:"):
			if end := strings.Index(p[k+2:], ":]"); end >= 0 {
				k += 2 + end + 2
			} else {
				k++
			}
		case p[k] == ']':
			return k + 1
		default:
			k++
		}
	}
	return len(p)
}

// flagText is the pattern's top-level flag groups before offset end, which
// stay in force after it.
func (l layout) flagText(p string, end int) string {
	var b strings.Builder
	for _, f := range l.flags {
		if f[1] <= end {
			b.WriteString(p[f[0]:f[1]])
		}
	}
	return b.String()
}

// trimEndAnchor drops a final `$` or `\z` (not escaped): NPD appends its
// own end anchor, and ours lets trailing white space through first.
func trimEndAnchor(p string) string {
	for _, a := range []string{`$`, `\z`} {
		if !strings.HasSuffix(p, a) {
			continue
		}
		rest := p[:len(p)-len(a)]
		// An odd run of backslashes before it escapes it.
		n := len(rest) - len(strings.TrimRight(rest, `\`))
		if n%2 == 0 {
			return rest
		}
	}
	return p
}
