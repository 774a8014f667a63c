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
