package network

import (
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

const netNetworkctl = `{"Interfaces":[
 {"Index":1,"Name":"lo","Type":"loopback","OperationalState":"carrier"},
 {"Index":2,"Name":"ens5","Type":"ether","LinkFile":"/usr/lib/systemd/network/99-default.link"},
 {"Index":3,"Name":"ens6","Type":"ether","LinkFile":"/usr/lib/systemd/network/99-default.link"},
 {"Index":9,"Name":"eni3f1a2b","Type":"ether","LinkFile":"/etc/systemd/network/10-eni.link"}]}`

// Ubuntu's default link file, as systemd-analyze cat-config prints it.
const netDefaultLink = `# /usr/lib/systemd/network/99-default.link
#  SPDX-License-Identifier: MIT-0
[Match]
OriginalName=*

[Link]
NamePolicy=keep kernel database onboard slot path
AlternativeNamesPolicy=database onboard slot path
MACAddressPolicy=persistent
`

const netNoneDropIn = `
# /etc/systemd/network/99-default.link.d/10-mac.conf
[Link]
MACAddressPolicy=none
`

func netMACRig(t *testing.T, eniLink string, tags ...string) (*probetest.Rig, *probetest.FakeRun, string) {
	t.Helper()
	root := t.TempDir()
	env, _, fr := probetest.At(t, root).Fake(tags...)
	fr.Set("networkctl --json=short", netNetworkctl)
	fr.Set("systemd-analyze cat-config /usr/lib/systemd/network/99-default.link", netDefaultLink)
	fr.Set("systemd-analyze cat-config /etc/systemd/network/10-eni.link", eniLink)
	p := probetest.Build(t, env, "mac-address-policy", "")
	if p == nil {
		return nil, fr, root
	}
	return probetest.NewRig(t, p, env), fr, root
}

func TestNetMACAddressPolicyMisconfigured(t *testing.T) {
	rig, fr, root := netMACRig(t, "# /etc/systemd/network/10-eni.link\n[Match]\nOriginalName=eni*\n[Link]\nMACAddressPolicy=random\n", "ubuntu")
	netInstallVPCCNI(t, root, "aws-node-x7k2p")
	res := rig.Check()
	// Both offending files, not just the first (NMA stopped there).
	a := probetest.Find(res, "MACAddressPolicyMisconfigured", "/usr/lib/systemd/network/99-default.link")
	b := probetest.Find(res, "MACAddressPolicyMisconfigured", "/etc/systemd/network/10-eni.link")
	if a == nil || b == nil || len(res) != 2 {
		t.Fatalf("got %v", probetest.Reasons(res))
	}
	if a.Severity != "Warning" || a.Message != `MACAddressPolicy in /usr/lib/systemd/network/99-default.link is set to "persistent" instead of 'none', which may cause network issues` {
		t.Fatalf("result: %+v", a)
	}
	// A drop-in later in the merged config wins.
	rig.Recovers("MACAddressPolicyMisconfigured", "/usr/lib/systemd/network/99-default.link", func() {
		fr.Set("systemd-analyze cat-config /usr/lib/systemd/network/99-default.link", netDefaultLink+netNoneDropIn)
	}, nil)
}

func TestNetMACAddressPolicyFine(t *testing.T) {
	for name, eni := range map[string]string{
		"none":          "[Link]\nMACAddressPolicy=none\n",
		"unset":         "[Link]\nNamePolicy=kernel\n",
		"reset to none": "[Link]\nMACAddressPolicy=persistent\n# drop-in\n[Link]\nMACAddressPolicy=\n",
		"other section": "[Match]\nMACAddressPolicy=random\n[Link]\nMACAddressPolicy = none\n",
	} {
		rig, fr, root := netMACRig(t, eni, "ubuntu")
		fr.Set("systemd-analyze cat-config /usr/lib/systemd/network/99-default.link", netDefaultLink+netNoneDropIn)
		netInstallVPCCNI(t, root, "aws-node-x7k2p")
		if res := rig.Check(); len(res) != 0 {
			t.Errorf("%s: %v", name, probetest.Reasons(res))
		}
	}
}

func TestNetMACAddressPolicyScope(t *testing.T) {
	// Not Ubuntu: not built.
	if rig, _, _ := netMACRig(t, "", "amzn"); rig != nil {
		t.Fatal("built on a non-Ubuntu host")
	}
	// Ubuntu without the VPC CNI (Calico, Cilium): nothing to check, and
	// no command is run.
	rig, fr, _ := netMACRig(t, "", "ubuntu")
	if res := rig.Check(); len(res) != 0 || fr.Called("networkctl --json=short") {
		t.Fatalf("no VPC CNI: %v (networkctl called: %v)", probetest.Reasons(res), fr.Called("networkctl --json=short"))
	}
}
