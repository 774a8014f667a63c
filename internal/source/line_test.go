package source

import (
	"strings"
	"testing"
)

func TestLine(t *testing.T) {
	const limit = MaxMessageBytes
	for _, c := range []struct {
		name   string
		pieces []string // all but the last are added; the last ends the line
		want   string
		cut    bool
	}{
		{"short", []string{"abc"}, "abc", false},
		{"crlf", []string{"ab", "c\r"}, "abc", false},
		{"only the last cr is dropped", []string{"a\r\r"}, "a\r", false},
		{"exactly the limit", []string{strings.Repeat("x", limit)}, strings.Repeat("x", limit), false},
		{"exactly the limit in pieces", []string{strings.Repeat("x", limit-1), "x"}, strings.Repeat("x", limit), false},
		{"cr beyond the limit", []string{strings.Repeat("x", limit) + "\r"}, strings.Repeat("x", limit), false},
		{"one byte too many", []string{strings.Repeat("x", limit), "y"}, strings.Repeat("x", limit), true},
		{"far too long in pieces", []string{strings.Repeat("x", limit-1), "ab", strings.Repeat("z", limit), "\r"}, strings.Repeat("x", limit-1) + "a", true},
	} {
		var l Line
		for _, p := range c.pieces[:len(c.pieces)-1] {
			l.Add([]byte(p))
		}
		got, cut := l.End([]byte(c.pieces[len(c.pieces)-1]))
		if got != c.want || cut != c.cut {
			t.Errorf("%s: got %d bytes (cut %v), want %d (cut %v)", c.name, len(got), cut, len(c.want), c.cut)
		}
		if !l.Empty() {
			t.Errorf("%s: not empty after End", c.name)
		}
		// The next line starts afresh.
		if got, cut := l.End([]byte("next")); got != "next" || cut {
			t.Errorf("%s: next line %q (cut %v)", c.name, got, cut)
		}
	}
}

// A long line's buffer is not kept for the short lines after it.
func TestLineGivesBackLargeBuffer(t *testing.T) {
	var l Line
	l.Add(make([]byte, 2*MaxMessageBytes))
	l.End(nil)
	if cap(l.buf) > keepLineBuf {
		t.Fatalf("kept a buffer of %d bytes", cap(l.buf))
	}
}

func TestCutMessage(t *testing.T) {
	long := strings.Repeat("x", MaxMessageBytes+1)
	if got, cut := CutMessage(long); len(got) != MaxMessageBytes || !cut {
		t.Errorf("got %d bytes, cut %v", len(got), cut)
	}
	if got, cut := CutMessage("short"); got != "short" || cut {
		t.Errorf("got %q, cut %v", got, cut)
	}
}
