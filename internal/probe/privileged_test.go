package probe

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCountEnviron(t *testing.T) {
	for in, want := range map[string]int{
		"": 0, "\x00\x00": 0, "A=1\x00B=2\x00": 2, "A=1\x00\x00B=2": 2, "A=1": 1,
	} {
		if got := countEnviron([]byte(in)); got != want {
			t.Errorf("countEnviron(%q) = %d, want %d", in, got, want)
		}
	}
}

// readInto reads a file larger than the buffer whole, and reuses the
// buffer for a smaller one.
func TestReadInto(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("0123456789abcdef", 1000)
	if err := os.WriteFile(filepath.Join(dir, "big"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "small"), []byte("x y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	buf, err := readInto(make([]byte, 0, 16), filepath.Join(dir, "big"))
	if err != nil || string(buf) != big {
		t.Fatalf("big: %d bytes, %v", len(buf), err)
	}
	if buf, err = readInto(buf, filepath.Join(dir, "small")); err != nil || string(buf) != "x y\n" {
		t.Fatalf("small: %q, %v", buf, err)
	}
	if _, err = readInto(buf, filepath.Join(dir, "absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("absent: %v", err)
	}
}
