package source

import "bytes"

// MaxMessageBytes is the most of one message that the rules see. A longer
// tailed line, journal MESSAGE or line given to `nodehealthctl test` is cut
// to its first MaxMessageBytes bytes, which the rules then match like any
// other message, and is counted in Batch.Truncated. The bound keeps the
// memory a runaway writer (a binary file, a log without newlines) can make
// the daemon hold to about this much per followed file.
const MaxMessageBytes = 1 << 20

// keepLineBuf is the largest line buffer a Line keeps for the next line;
// a larger one, left by a rare long line, is given back to the garbage
// collector rather than held for the short lines that follow.
const keepLineBuf = 64 << 10

// Line assembles one line of text from the pieces it is read in, keeping at
// most MaxMessageBytes of it. The tail source and `nodehealthctl test` both
// build their messages with it, so that the rules see the same text from
// either. The zero value is an empty line.
type Line struct {
	buf     []byte
	dropped int  // bytes beyond MaxMessageBytes
	last    byte // the last byte dropped
}

// Add appends p, a piece of the line that does not end it.
func (l *Line) Add(p []byte) {
	if room := MaxMessageBytes - len(l.buf); len(p) > room {
		l.dropped += len(p) - room
		l.last = p[len(p)-1]
		p = p[:room]
	}
	if n := len(l.buf) + len(p); n > cap(l.buf) {
		// Doubling up to the bound, where append would grow a large
		// buffer by a quarter at a time and copy it each time.
		buf := make([]byte, len(l.buf), min(max(2*cap(l.buf), n), MaxMessageBytes))
		copy(buf, l.buf)
		l.buf = buf
	}
	l.buf = append(l.buf, p...)
}

// Empty reports whether nothing has been added since the last End.
func (l *Line) Empty() bool { return len(l.buf) == 0 && l.dropped == 0 }

// End completes the line with its last piece p (without the '\n') and
// returns the message and whether it was cut to MaxMessageBytes; l is then
// empty. A '\r' that ends the line is not part of the message.
func (l *Line) End(p []byte) (msg string, cut bool) {
	b, cut := l.EndBytes(p)
	return string(b), cut
}

// EndBytes is End without the copy: the message it returns is p itself or
// l's buffer, and stays valid only until the next Add or End on l. A
// reader that keeps its messages copies them (the tail source, into its
// batch's Text), so that a line read in one piece is copied once.
func (l *Line) EndBytes(p []byte) (msg []byte, cut bool) {
	if l.Empty() && len(p) <= MaxMessageBytes {
		return bytes.TrimSuffix(p, []byte("\r")), false
	}
	l.Add(p)
	b := l.buf
	switch {
	case l.dropped == 0:
		b = bytes.TrimSuffix(b, []byte("\r"))
	case l.dropped == 1 && l.last == '\r':
		// Only the line's '\r' fell beyond the bound.
	default:
		cut = true
	}
	// b keeps the array alive for the caller; the next Add writes over it
	// or starts a new one.
	if cap(l.buf) > keepLineBuf {
		l.buf = nil
	} else {
		l.buf = l.buf[:0]
	}
	l.dropped = 0
	return b, cut
}

// CutMessage applies MaxMessageBytes to a message read whole (a journal
// MESSAGE); cut reports that it was longer.
func CutMessage(s string) (msg string, cut bool) {
	if len(s) <= MaxMessageBytes {
		return s, false
	}
	// A copy, so that the rest of a large message is not kept alive.
	return string([]byte(s[:MaxMessageBytes])), true
}
