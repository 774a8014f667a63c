// Package bundletest reads a diagnostics bundle, a tar.gz of files below
// one top directory, for the tests that check what a bundle holds.
package bundletest

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// Read returns the files of the bundle r by path below its top directory;
// anything but a valid tar.gz fails the test.
func Read(tb testing.TB, r io.Reader) map[string][]byte {
	tb.Helper()
	return read(tb, "bundle", r)
}

// ReadFile is Read of the bundle at path.
func ReadFile(tb testing.TB, path string) map[string][]byte {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	return read(tb, path, f)
}

func read(tb testing.TB, name string, r io.Reader) map[string][]byte {
	tb.Helper()
	gz, err := gzip.NewReader(r)
	if err != nil {
		tb.Fatalf("%s is not gzip: %v", name, err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			tb.Fatalf("%s is not a valid tar.gz: %v", name, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			tb.Fatalf("%s: %s: %v", name, h.Name, err)
		}
		_, rest, _ := strings.Cut(h.Name, "/")
		files[rest] = data
	}
}
