package network

import (
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

func TestIPTablesThroughPrivilegedHelper(t *testing.T) {
	ft := probetest.NewTree(t)
	env := ft.Env() // its Run fails the test if called
	priv := &probetest.Privileged{Commands: map[string]string{
		"iptables-save":  "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 192.0.2.0/24 -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n",
		"ip6tables-save": "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
	}}
	env.Privileged = priv
	res := probetest.Check(t, probetest.Build(t, env, "iptables", ""), env)
	if len(res) == 0 {
		t.Errorf("the helper's REJECT rule was not reported")
	}
	if got := strings.Join(priv.Calls, ","); got != "command iptables-save,command ip6tables-save" {
		t.Errorf("helper calls %q", got)
	}
}
