package cluster

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHostnameOverride(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{`NODEADM_KUBELET_ARGS="--node-ip=10.0.0.7 --hostname-override=ip-10-0-1-42.ec2.internal --cloud-provider=external"`, "ip-10-0-1-42.ec2.internal"},
		{"KUBELET_ARGS='--v=2 --hostname-override i-0abc123'\n", "i-0abc123"},
		{"export KUBELET_EXTRA_ARGS=--hostname-override=node-x\n", "node-x"},
		{"# --hostname-override=commented\nNODEADM_KUBELET_ARGS=\"--node-ip=1.2.3.4\"\n", ""},
		{"A=\"--hostname-override=first\"\nB=\"--hostname-override=second\"\n", "second"},
		{`KUBELET_ARGS="--node-labels=a=b\ c --hostname-override=\"quoted\""`, "quoted"},
		{"NODEADM_KUBELET_ARGS=\"--hostname-override=\"\n", ""},
	} {
		if got := hostnameOverride([]byte(tc.env)); got != tc.want {
			t.Errorf("hostnameOverride(%q) = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestResolveNodeNameOrder(t *testing.T) {
	root := t.TempDir()
	if n, src := resolveNodeName(root, "Flag-Node", "cert-node"); n != "Flag-Node" || src != SourceFlag {
		t.Errorf("flag: %s from %s", n, src)
	}
	if n, src := resolveNodeName(root, "", "cert-node"); n != "cert-node" || src != SourceCertificate {
		t.Errorf("certificate: %s from %s", n, src)
	}
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "proc/sys/kernel/hostname"), "Host-Name\n")
	if n, src := resolveNodeName(root, "", ""); n != "host-name" || src != SourceHostname {
		t.Errorf("hostname: %s from %s", n, src)
	}
	write(filepath.Join(root, KubeletEnvironment), `NODEADM_KUBELET_ARGS="--hostname-override=IP-10-0-0-1.EC2.internal"`+"\n")
	if n, src := resolveNodeName(root, "", "cert-node"); n != "ip-10-0-0-1.ec2.internal" || src != SourceEnvironment {
		t.Errorf("environment: %s from %s", n, src)
	}
}
