package storage

import (
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

// TestNeedsChecksIsWhatTheProbeTakes holds each probe to its declared
// Needs.Checks (probetest.CheckNeeds).
func TestNeedsChecksIsWhatTheProbeTakes(t *testing.T) {
	probetest.CheckNeeds(t, []probetest.NeedsCase{
		{Name: "io-delays: a process waiting on I/O", Build: func(t *testing.T) (probe.Probe, *probe.Env, func()) {
			ft := probetest.NewTree(t)
			env := ft.Env()
			ticks := uint64(0)
			return probetest.Build(t, env, "io-delays", ""), env, func() {
				ticks += 5000
				ft.Proc(probetest.Proc{PID: 42, Comm: "postgres", Starttime: 7, BlkioTicks: ticks})
			}
		}, WantChecks: 2},
	})
}
