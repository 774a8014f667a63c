// Package logtest keeps log output for tests: the daemon's goroutines (or
// a command's output copiers) write it while the test reads it.
package logtest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// Buffer is a log safe for concurrent writers and readers. The zero value
// is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Lines returns the lines that hold sub.
func (b *Buffer) Lines(sub string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// Count returns how many lines hold sub.
func (b *Buffer) Count(sub string) int { return len(b.Lines(sub)) }

// LogOnFailure prints the buffer, as name's log, when tb has failed by its
// end.
func (b *Buffer) LogOnFailure(tb testing.TB, name string) {
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("%s log:\n%s", name, b.String())
		}
	})
}
