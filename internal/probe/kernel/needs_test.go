package kernel

import (
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

// TestNeedsChecksIsWhatTheProbeTakes holds each probe to its declared
// Needs.Checks (probetest.CheckNeeds).
func TestNeedsChecksIsWhatTheProbeTakes(t *testing.T) {
	probetest.CheckNeeds(t, []probetest.NeedsCase{
		{Name: "zombies: a pile-up", Build: func(t *testing.T) (probe.Probe, *probe.Env, func()) {
			_, env, p := zombieFixture(t, 20, "")
			return p, env, nil
		}, WantChecks: 5},
		{Name: "zombies: consecutive 2", Build: func(t *testing.T) (probe.Probe, *probe.Env, func()) {
			_, env, p := zombieFixture(t, 20, "consecutive: 2")
			return p, env, nil
		}, WantChecks: 2},
		{Name: "open-files: one read", Build: func(t *testing.T) (probe.Probe, *probe.Env, func()) {
			ft := probetest.NewTree(t)
			ft.Write("/proc/sys/fs/file-nr", "9000\t0\t10000\n")
			env := ft.Env()
			return probetest.Build(t, env, "open-files", ""), env, nil
		}, WantChecks: 1},
	})
}
