// Package testbin builds the project's binaries once per test process so
// that e2e tests run the real nodehealthd and nodehealthctl.
package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	once sync.Once
	dir  string
	err  error
	out  []byte
)

// Build returns the directory holding nodehealthd and nodehealthctl built
// from this checkout.
func Build(tb testing.TB) string {
	tb.Helper()
	once.Do(func() {
		dir, err = os.MkdirTemp("", "nodehealthd-bin-")
		if err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/nodehealthd", "./cmd/nodehealthctl")
		cmd.Dir = moduleRoot()
		out, err = cmd.CombinedOutput()
	})
	if err != nil {
		tb.Fatalf("build binaries: %v\n%s", err, out)
	}
	return dir
}

// moduleRoot is two levels above this file's directory (e2e/internal/testbin).
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// NoProbes is the config.yaml line that switches the host probes off: they
// look at this machine too (its clock, its routes) and would add findings a
// test does not expect.
const NoProbes = "probes: {enabled: false}\n"

// Config writes a config.yaml for a test daemon into dir and returns its
// path: extra, then a diagnostics directory under dir, so that a Fatal
// finding's bundle (and the console summary's budget file) never lands in
// this machine's /var/log.
func Config(tb testing.TB, dir, extra string) string {
	tb.Helper()
	path := filepath.Join(dir, "config.yaml")
	body := extra + "diagnostics:\n  dir: " + filepath.Join(dir, "diagnostics") + "\n"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}
