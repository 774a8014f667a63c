package logtest

import (
	"fmt"
	"testing"
)

func TestBufferCountsLines(t *testing.T) {
	var b Buffer
	fmt.Fprintf(&b, "x truncated\ny\ntruncated z\n")
	if n := b.Count("truncated"); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}
}
