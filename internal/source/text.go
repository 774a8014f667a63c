package source

import "unsafe"

// Text holds the messages of one batch's records in a single buffer rather
// than one allocation per record: under a log flood, a string per line
// costs more in allocation and garbage collection than reading and
// matching the line. With Batch.Recycle the buffer serves batch after
// batch, and a flood allocates nothing per line.
//
// The strings String returns share the buffer: they are valid until
// Reset, which the source calls only when the batch's receiver has given
// the batch back (Batch.Recycle). The zero value is ready to use.
type Text struct {
	buf []byte
}

const (
	// TextBytes is the buffer's size: a batch of typical lines fits.
	TextBytes = 64 << 10
	// textOwn is the longest message kept in the buffer; a longer one, or
	// one that no longer fits, is allocated on its own (and left to the
	// garbage collector), since the buffer must never move.
	textOwn = 4 << 10
)

// String returns b as a string, in the buffer when it fits.
func (t *Text) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if t.buf == nil {
		t.buf = make([]byte, 0, TextBytes)
	}
	if len(b) > textOwn || len(t.buf)+len(b) > cap(t.buf) {
		return string(b)
	}
	start := len(t.buf)
	t.buf = append(t.buf, b...)
	return unsafe.String(&t.buf[start], len(b))
}

// Reset empties the buffer for reuse: no string String returned may be in
// use any more.
func (t *Text) Reset() { t.buf = t.buf[:0] }
