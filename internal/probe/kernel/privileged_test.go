package kernel

import (
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

func TestProbesUsePrivilegedHelper(t *testing.T) {
	ft := probetest.NewTree(t)
	// The fixture's own /proc has one quiet process; the helper sees more.
	ft.Proc(probetest.Proc{PID: 1, Comm: "systemd", Environ: []string{"HOME=/"}})
	priv := &probetest.Privileged{Procs: []probe.Process{
		{PID: 1, Comm: "systemd", State: "S", Environ: 1},
		{PID: 500, Comm: "java", State: "S", Environ: 1500},
	}}
	for i := 0; i < 25; i++ {
		priv.Procs = append(priv.Procs, probe.Process{PID: 1000 + i, Comm: "defunct", State: "Z", Environ: 0})
	}
	env := ft.Env()
	env.Privileged = priv

	res := probetest.Check(t, probetest.Build(t, env, "large-environment", ""), env)
	probetest.WantOne(t, res, "KernelReady", "LargeEnvironment", "500/java", "PID 500 has a higher than normal environment variable count at 1500")

	z := probetest.Build(t, env, "zombies", "consecutive: 1")
	if res := probetest.Check(t, z, env); len(res) != 1 || res[0].Reason != "ExcessiveZombieProcesses" || !strings.Contains(res[0].Message, "25 zombie") {
		t.Errorf("zombies through the helper: %+v", res)
	}
	if got := strings.Join(priv.Calls, ","); got != "processes,processes" {
		t.Errorf("helper calls %q, want one process listing per probe", got)
	}
}
