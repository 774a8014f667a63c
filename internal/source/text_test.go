package source

import (
	"strings"
	"testing"
	"unsafe"
)

func TestTextKeepsWhatItHandedOut(t *testing.T) {
	var txt Text
	var got, want []string
	buf := []byte("0123456789")
	for i := 0; i < 2*TextBytes/len(buf); i++ {
		got = append(got, txt.String(buf))
		want = append(want, string(buf))
		buf[i%len(buf)]++ // the caller's bytes change after each call
	}
	long := strings.Repeat("z", textOwn+1)
	got, want = append(got, txt.String([]byte(long))), append(want, long)
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("string %d is %q, want %q", i, got[i], want[i])
		}
	}
	if txt.String(nil) != "" {
		t.Fatal("empty input")
	}
	// After Reset the buffer serves again from its start.
	first := unsafe.StringData(got[0])
	txt.Reset()
	if s := txt.String([]byte("again")); s != "again" || unsafe.StringData(s) != first {
		t.Fatalf("after Reset: %q not in the same buffer", s)
	}
}
