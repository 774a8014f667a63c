package network

import (
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

// netInstallVPCCNI creates the pod log directory by which the VPC CNI is
// detected.
func netInstallVPCCNI(t *testing.T, root, pod string) {
	t.Helper()
	probetest.At(t, root).Mkdir("var/log/pods/kube-system_" + pod + "_0b6c2f7e-1111-4a6e-9c1e-3d2a1f0e9b7c/aws-vpc-cni-init")
	probetest.At(t, root).Mkdir("var/log/pods/kube-system_" + pod + "_0b6c2f7e-1111-4a6e-9c1e-3d2a1f0e9b7c/aws-node")
}
