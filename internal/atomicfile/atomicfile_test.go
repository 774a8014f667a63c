package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/atomicfile/atomicfiletest"
)

func TestWriteReplacesWithMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.json")
	for _, content := range []string{"first", "second, longer"} {
		if err := Write(path, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	atomicfiletest.WantOnly(t, filepath.Dir(path), "f.json")
}

// On a full disk the write fails with the reason, the old content stays,
// and no partial temporary file is left to keep the disk full.
func TestFullDiskKeepsOldContentAndLeavesNothing(t *testing.T) {
	dir := atomicfiletest.SmallDisk(t, "64k")
	path := filepath.Join(dir, "f.json")
	if err := Write(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Write(path, bytes.Repeat([]byte("x"), 256<<10), 0o600)
	if err == nil {
		t.Fatal("256 KiB written to a 64 KiB disk")
	}
	t.Log(err)
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("content %q after a failed write, want the old", got)
	}
	atomicfiletest.WantOnly(t, dir, "f.json")
}

// A rename that fails (here: the target is a directory) also removes the
// temporary file.
func TestFailedRenameLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "f.json", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(dir, "f.json"), []byte("x"), 0o600); err == nil {
		t.Fatal("replaced a directory")
	}
	atomicfiletest.WantOnly(t, dir, "f.json")
}
