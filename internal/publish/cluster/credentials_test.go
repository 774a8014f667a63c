package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The kubeconfig names host paths; under --root every one of them must be
// read from the root, relative ones next to the kubeconfig.
func TestLoadCredentialsReRootsHostPaths(t *testing.T) {
	root := t.TempDir()
	cert, key := selfSigned(t, "system:node:ip-10-0-0-9.ec2.internal")
	writeFile(t, filepath.Join(root, "var/lib/kubelet/pki/kubelet-client-current.pem"), append(cert, key...))
	writeFile(t, filepath.Join(root, "etc/kubernetes/pki/ca.crt"), cert)
	writeFile(t, filepath.Join(root, "etc/kubernetes/kubelet.conf"), []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://10.0.0.1:6443", certificate-authority: /etc/kubernetes/pki/ca.crt}
users:
- name: u
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`))
	path, err := findKubeconfig(root, "")
	if err != nil || path != filepath.Join(root, "etc/kubernetes/kubelet.conf") {
		t.Fatalf("findKubeconfig = %q, %v", path, err)
	}
	c, err := loadCredentials(context.Background(), &Config{Root: root, UserAgent: "nodehealthd/test"}, path, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	pemPath := filepath.Join(root, "var/lib/kubelet/pki/kubelet-client-current.pem")
	if c.config.CertFile != pemPath || c.config.KeyFile != pemPath || c.config.CAFile != filepath.Join(root, "etc/kubernetes/pki/ca.crt") {
		t.Errorf("paths not re-rooted: cert %q key %q ca %q", c.config.CertFile, c.config.KeyFile, c.config.CAFile)
	}
	// Files, not data: client-go re-reads files at each handshake, which
	// is what makes a rotated certificate usable.
	if len(c.config.CertData) != 0 || c.certFile != pemPath {
		t.Errorf("certificate must stay a file: data %d bytes, certFile %q", len(c.config.CertData), c.certFile)
	}
	if c.certNode != "ip-10-0-0-9.ec2.internal" || c.kind != "client certificate" || c.config.UserAgent != "nodehealthd/test" || c.config.Dial == nil {
		t.Errorf("certNode %q kind %q agent %q dial %v", c.certNode, c.kind, c.config.UserAgent, c.config.Dial != nil)
	}
}

func TestLoadCredentialsExecAndTokenFile(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "var/lib/kubelet/kubeconfig"), []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: exec
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: /usr/bin/aws-iam-authenticator
      args: [token, -i, cluster]
- name: bare
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: [eks, get-token]
- name: tokenfile
  user: {tokenFile: token}
contexts:
- {name: exec, context: {cluster: c, user: exec}}
- {name: bare, context: {cluster: c, user: bare}}
- {name: tokenfile, context: {cluster: c, user: tokenfile}}
current-context: exec
`))
	writeFile(t, filepath.Join(root, "var/lib/kubelet/token"), []byte("abc"))
	path := filepath.Join(root, "var/lib/kubelet/kubeconfig")
	c, err := loadCredentials(context.Background(), &Config{Root: root}, path, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "usr/bin/aws-iam-authenticator"); c.exec == nil || c.exec.command != want || c.kind != "exec plugin "+want {
		t.Fatalf("exec plugin %+v (kind %q), want %q", c.exec, c.kind, want)
	}
	// client-go's own runner has no time limit and copies stderr raw.
	if c.config.ExecProvider != nil || c.config.WrapTransport == nil {
		t.Errorf("the plugin must be run by execPlugin, not client-go: ExecProvider %v", c.config.ExecProvider)
	}
	for ctx, check := range map[string]func(*credentials){
		"bare": func(c *credentials) {
			if c.exec == nil || c.exec.command != "aws" {
				t.Errorf("a PATH command must stay as is: %+v", c.exec)
			}
		},
		"tokenfile": func(c *credentials) {
			if c.config.BearerTokenFile != filepath.Join(root, "var/lib/kubelet/token") || c.kind != "token file" {
				t.Errorf("token file %q kind %q", c.config.BearerTokenFile, c.kind)
			}
		},
	} {
		b, _ := os.ReadFile(path)
		p2 := filepath.Join(root, "var/lib/kubelet/kubeconfig-"+ctx)
		// Switch the current context by rewriting the last line.
		b2 := []byte(string(b[:len(b)-len("current-context: exec\n")]) + "current-context: " + ctx + "\n")
		writeFile(t, p2, b2)
		c, err := loadCredentials(context.Background(), &Config{Root: root}, p2, slog.Default())
		if err != nil {
			t.Fatalf("%s: %v", ctx, err)
		}
		check(c)
	}
}

func TestFindKubeconfigOrderAndExplicit(t *testing.T) {
	root := t.TempDir()
	if _, err := findKubeconfig(root, ""); err == nil {
		t.Fatal("found a kubeconfig in an empty root")
	}
	for _, p := range []string{"/etc/kubernetes/kubelet.conf", "/etc/kubernetes/kubelet/kubeconfig", "/var/lib/kubelet/kubeconfig"} {
		writeFile(t, filepath.Join(root, p), []byte("x"))
		got, err := findKubeconfig(root, "")
		if err != nil || got != filepath.Join(root, p) {
			t.Errorf("after adding %s: %q, %v", p, got, err)
		}
	}
	explicit := filepath.Join(t.TempDir(), "kc")
	if _, err := findKubeconfig(root, explicit); err == nil {
		t.Error("a missing explicit kubeconfig was accepted")
	}
	writeFile(t, explicit, []byte("x"))
	if got, err := findKubeconfig(root, explicit); err != nil || got != explicit {
		t.Errorf("explicit: %q, %v", got, err)
	}
}
