package storage

import (
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

func TestEBSThroughPrivilegedHelper(t *testing.T) {
	ft := probetest.NewTree(t)
	ft.Write("/dev/nvme0n1", "")
	env := ft.Env()
	priv := &probetest.Privileged{NVMeAdmin: &fakeNVMe{
		identify: map[string][]byte{"nvme0n1": identifyData(0x1D0F, "vol0a1b2c3d4e5f60718", "Amazon Elastic Block Store")},
		pages:    map[string][]byte{"nvme0n1": ebsPage(0, 0, 0, 0)},
	}}
	env.Privileged = priv
	p := probetest.Build(t, env, "ebs-performance", "").(*ebsPerformanceProbe)
	if p.admin != probe.NVMeAdmin(priv) {
		t.Fatalf("EBS probe issues NVMe commands through %T, want the helper", p.admin)
	}
	probetest.WantNone(t, probetest.Check(t, p, env))
}
