package redact

import (
	"bytes"
	"cmp"
	"iter"
	"slices"
)

// span is a part of the input to replace.
type span struct {
	start, end int
	repl       string
}

// spans collects the replacements of one pass.
type spans []span

// add records a replacement of b[start:end] and counts it.
func (s *spans) add(start, end int, repl, class string, c *Counts) {
	if end <= start {
		return
	}
	*s = append(*s, span{start, end, repl})
	c.inc(class)
}

// apply returns b with the replacements made; b itself when there are
// none, so that a pass over clean text allocates nothing. Overlapping
// spans are merged: their union is replaced, never only a part of it.
func (s spans) apply(b []byte) []byte {
	if len(s) == 0 {
		return b
	}
	slices.SortFunc(s, func(x, y span) int { return cmp.Compare(x.start, y.start) })
	var out bytes.Buffer
	out.Grow(len(b))
	last := 0
	for i := 0; i < len(s); {
		r := s[i]
		for i++; i < len(s) && s[i].start < r.end; i++ {
			r.end = max(r.end, s[i].end)
			r.repl = Redacted
		}
		out.Write(b[last:r.start])
		out.WriteString(r.repl)
		last = r.end
	}
	out.Write(b[last:])
	return out.Bytes()
}

// isRedacted reports whether v is (or starts with) a placeholder of an
// earlier pass, so that a second pass leaves it alone.
func isRedacted(v []byte) bool {
	return bytes.HasPrefix(v, []byte("[REDACTED"))
}

// asciiLower lower-cases ASCII letters only, so that offsets in the
// result are offsets in b.
func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if isUpper(c) {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// indexes yields the offset of each occurrence of sep in b, left to
// right; the search goes on after the end of each one.
func indexes(b []byte, sep string) iter.Seq[int] {
	return func(yield func(int) bool) {
		for off := 0; ; {
			i := bytes.Index(b[off:], []byte(sep))
			if i < 0 || !yield(off+i) {
				return
			}
			off += i + len(sep)
		}
	}
}

// isSpace is whitespace within a line, or NUL between the words of
// /proc/*/cmdline and /proc/*/environ.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == 0 }

func isBlank(c byte) bool { return isSpace(c) || c == '\n' || c == '\r' || c == '\v' || c == '\f' }
