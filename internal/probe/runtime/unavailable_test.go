package runtime

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

// A probe whose host lacks what it asks says so once, naming itself, and
// not again on every later check.
func TestUnavailableIsLoggedOnce(t *testing.T) {
	for _, c := range []struct {
		probe, want string
		env         func(t *testing.T) *probe.Env
	}{
		{"repeated-restart", "no D-Bus system bus", func(t *testing.T) *probe.Env { return probetest.NewTree(t).Env() }},
		{"containerd-deprecations", "ctr not found", func(t *testing.T) *probe.Env {
			ft := probetest.NewTree(t)
			ft.Write("/run/containerd/containerd.sock", "")
			env := ft.Env()
			env.Run = func(context.Context, string, ...string) ([]byte, error) {
				return nil, fmt.Errorf("ctr: %w", &exec.Error{Name: "ctr", Err: exec.ErrNotFound})
			}
			return env
		}},
	} {
		t.Run(c.probe, func(t *testing.T) {
			env := c.env(t)
			var log bytes.Buffer
			env.Log = slog.New(slog.NewTextHandler(&log, nil))
			probetest.WantQuiet(t, probetest.Build(t, env, c.probe, ""), env, 3)
			lines := strings.Split(strings.TrimSpace(log.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], c.want) || !strings.Contains(lines[0], "probe="+c.probe) {
				t.Fatalf("3 checks: want one line saying %q for probe=%s, got:\n%s", c.want, c.probe, log.String())
			}
		})
	}
}
