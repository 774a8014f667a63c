package rules

import (
	"path/filepath"
	"regexp"
	"regexp/syntax"

	"github.com/coregx/ahocorasick"
)

// ruleLiterals returns strings of which at least one occurs in every line
// any of the patterns matches, or nil if some pattern has no such literal.
func ruleLiterals(patterns []*regexp.Regexp) []string {
	var all []string
	for _, re := range patterns {
		parsed, err := syntax.Parse(re.String(), syntax.Perl)
		if err != nil {
			return nil
		}
		lits := requiredLiterals(parsed.Simplify())
		if len(lits) == 0 {
			return nil
		}
		all = append(all, lits...)
	}
	return all
}

// requiredLiterals walks a parsed regexp: a concatenation needs all its
// parts, so the most selective part's literals suffice; an alternation needs
// one of its branches, so it needs the union of theirs.
func requiredLiterals(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil // case-insensitive: the exact bytes are unknown
		}
		return []string{string(re.Rune)}
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiterals(re.Sub[0])
		}
	case syntax.OpConcat:
		var best []string
		for _, sub := range re.Sub {
			if l := requiredLiterals(sub); l != nil && score(l) > score(best) {
				best = l
			}
		}
		return best
	case syntax.OpAlternate:
		var union []string
		for _, sub := range re.Sub {
			l := requiredLiterals(sub)
			if l == nil {
				return nil
			}
			union = append(union, l...)
		}
		return union
	}
	return nil
}

// score prefers long literals: the shortest of a set bounds its selectivity.
func score(lits []string) int {
	if len(lits) == 0 {
		return -1
	}
	m := len(lits[0])
	for _, l := range lits[1:] {
		m = min(m, len(l))
	}
	return m
}

func (s *Set) buildStream(idx []int) *stream {
	if len(idx) == 0 {
		return nil
	}
	st := &stream{rules: idx}
	litID := map[string]int{}
	var lits []string
	for _, i := range idx {
		c := s.rules[i]
		if c.literals == nil {
			st.always = append(st.always, i)
			continue
		}
		for _, l := range c.literals {
			id, ok := litID[l]
			if !ok {
				id = len(lits)
				litID[l] = id
				lits = append(lits, l)
				st.litRules = append(st.litRules, nil)
			}
			if n := len(st.litRules[id]); n == 0 || st.litRules[id][n-1] != i {
				st.litRules[id] = append(st.litRules[id], i)
			}
		}
	}
	if len(lits) > 0 {
		ac, err := ahocorasick.NewBuilder().AddStrings(lits).Build()
		if err != nil {
			// Cannot happen for non-empty literal lists; fall back to
			// evaluating everything rather than dropping rules.
			st.always = idx
			st.litRules = nil
			return st
		}
		st.ac = ac
		first := map[byte]bool{}
		for _, l := range lits {
			first[l[0]] = true
		}
		st.skipAhead = len(first) <= 4
	}
	return st
}

// journalStream returns the stream for an (identifier, unit) pair.
func (s *Set) journalStream(ident, unit string) *stream {
	var idx []int
	for _, c := range s.journal {
		if c.idents[ident] || c.units[unit] {
			idx = append(idx, c.idx)
		}
	}
	return s.buildStream(idx)
}

// fileStream returns the stream for one tailed file.
func (s *Set) fileStream(path string) *stream {
	var idx []int
	for _, c := range s.files {
		for _, p := range c.paths {
			if ok, _ := filepath.Match(p, path); ok || p == path {
				idx = append(idx, c.idx)
				break
			}
		}
	}
	return s.buildStream(idx)
}
