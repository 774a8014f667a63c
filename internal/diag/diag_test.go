package diag

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/redact"
	"github.com/nodehealthd/nodehealthd/internal/redact/redacttest"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// Secrets planted in the fixture; none may appear in the bundle.
const (
	staticToken    = "s3cr3t-static-token-0123456789abcdef"
	awsSecret      = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	kubePassword   = "hunter2-kubeconfig-password"
	eksToken       = "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eQ"
	jwt            = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
	bearer         = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdl"
	registryPass   = "registry-p4ssw0rd"
	accessKeyID    = "AKIAIOSFODNN7EXAMPLE"
	bootstrapToken = "07401b.f395accd246ae52d"
	blockToken     = "opaque-credential-in-a-block-scalar-42"
)

// pemBody returns the base64 lines of a PEM block: any of them in the
// bundle means the key leaked.
func pemBody(p []byte) []string {
	var out []string
	for _, l := range strings.Split(string(p), "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}

func put(t *testing.T, root, p string, content []byte) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, content, 0o600); err != nil {
		t.Fatal(err)
	}
}

type fixture struct {
	root    string
	secrets []string
	cert    string
}

func newFixture(t *testing.T) *fixture {
	root := t.TempDir()
	f := &fixture{root: root}
	clientKey := redacttest.ECKeyPEM(t)
	journalKey := redacttest.Ed25519KeyPEM(t)
	fileKey := redacttest.ECKeyPEM(t)
	keyData := base64.StdEncoding.EncodeToString(clientKey)
	f.cert = base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUPublicCertificateBodyOnly\n-----END CERTIFICATE-----\n"))
	f.secrets = []string{blockToken, staticToken, awsSecret, kubePassword, eksToken, jwt, bearer, registryPass, accessKeyID, bootstrapToken,
		keyData, keyData[:40], "PRIVATE KEY-----"}
	for _, k := range [][]byte{clientKey, journalKey, fileKey} {
		f.secrets = append(f.secrets, pemBody(k)...)
	}

	put(t, root, "proc/sys/kernel/hostname", []byte("ip-10-0-1-42.ec2.internal\n"))
	put(t, root, "proc/mounts", []byte("/dev/nvme0n1p1 / xfs rw,noatime 0 0\n"))
	put(t, root, "proc/cmdline", []byte("BOOT_IMAGE=/vmlinuz root=UUID=1 ro\n"))
	put(t, root, "etc/os-release", []byte("NAME=\"Amazon Linux\"\nVERSION=\"2023\"\n"))
	// An NVIDIA GPU, so that nvidia-smi is run.
	put(t, root, "sys/bus/pci/devices/0000:00:1e.0/vendor", []byte("0x10de\n"))
	put(t, root, "sys/bus/pci/devices/0000:00:1e.0/class", []byte("0x030200\n"))

	st := state.New("boot-1", time.Now())
	var ch state.Changes
	st.Raise(finding.Finding{Condition: finding.KernelReady, Reason: "ForkFailedOutOfPIDs", Severity: finding.Fatal,
		Message: "kubelet: Unauthorized: token " + jwt, Source: "journal", Detected: time.Now(), LastSeen: time.Now(), Count: 1}, false, &ch)
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	put(t, root, "var/lib/nodehealthd/state.json", b)

	put(t, root, "etc/nodehealthd/config.yaml", []byte("rulesDir: /opt/nodehealthd/rules\nreasons:\n  SoftLockup:\n    enabled: false\n"))
	put(t, root, "etc/nodehealthd/rules.d/local.yaml", []byte("rules: []\n"))
	put(t, root, "etc/nodehealthd/tls/metrics.key", fileKey)
	put(t, root, "etc/nodehealthd/tls/client-key.pem", fileKey)
	put(t, root, "opt/nodehealthd/rules/extra.yaml", []byte("rules: []\n# extra\n"))

	put(t, root, "var/lib/kubelet/kubeconfig", []byte(`apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: /etc/kubernetes/pki/ca.crt
    server: https://0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com
  name: kubernetes
contexts:
- context: {cluster: kubernetes, user: kubelet}
  name: kubelet
current-context: kubelet
users:
- name: kubelet
  user:
    token: `+staticToken+`
    password: `+kubePassword+`
    client-certificate-data: `+f.cert+`
    client-key-data: `+keyData+`
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: [eks, get-token, --cluster-name, demo, --region, us-west-2]
      env:
      - name: AWS_SECRET_ACCESS_KEY
        value: `+awsSecret+`
      - name: AWS_PROFILE
        value: node-profile
`))
	// A block scalar hides the value from line-based patterns; only the
	// structural kubeconfig redaction catches it.
	put(t, root, "var/lib/kubelet/bootstrap-kubeconfig", []byte("apiVersion: v1\nkind: Config\nusers:\n- name: bootstrap\n  user:\n    token: |-\n      "+blockToken+"\n"))
	put(t, root, "var/lib/kubelet/pki/kubelet-client-current.pem", fileKey)
	put(t, root, "etc/containerd/config.toml", []byte("[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r.example\".auth]\n  username = \"u\"\n  password = \""+registryPass+"\"\n"))
	put(t, root, "etc/cni/net.d/10-aws.conflist", []byte(`{"cniVersion":"1.0.0","name":"aws-cni"}`))
	put(t, root, "run/systemd/resolve/stub-resolv.conf", []byte("nameserver 127.0.0.53\n"))
	if err := os.Symlink("/run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	// A log longer than MaxBytes keeps its end.
	put(t, root, "var/log/aws-routed-eni/ipamd.log", []byte(strings.Repeat("old line\n", 20000)+"LAST LINE\n"))
	return f
}

// fakeRunner answers like a node where nft is not installed, iptables-save
// hangs and lsblk fails after some output.
type fakeRunner struct {
	journalKey []byte
	mu         sync.Mutex
	calls      []string
}

func (r *fakeRunner) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	r.mu.Lock()
	r.calls = append(r.calls, strings.Join(append([]string{name}, args...), " "))
	r.mu.Unlock()
	switch name {
	case "journalctl":
		if slices.Contains(args, "kubelet") {
			var b strings.Builder
			b.WriteString("2026-03-01T12:00:00+0000 ip kubelet[1]: starting\n")
			for _, l := range strings.Split(strings.TrimSpace(string(r.journalKey)), "\n") {
				b.WriteString("2026-03-01T12:00:01+0000 ip kubelet[1]: " + l + "\n")
			}
			b.WriteString("2026-03-01T12:00:02+0000 ip kubelet[1]: request headers: Authorization: Bearer " + bearer + "\n")
			b.WriteString("2026-03-01T12:00:03+0000 ip kubelet[1]: exec plugin returned " + eksToken + "\n")
			b.WriteString("2026-03-01T12:00:04+0000 ip kubelet[1]: using credentials " + accessKeyID + " and bootstrap token " + bootstrapToken + "\n")
			return []byte(b.String()), nil
		}
		return []byte("-- No entries --\n"), nil
	case "nft":
		return nil, &exec.Error{Name: "nft", Err: exec.ErrNotFound}
	case "iptables-save":
		<-ctx.Done()
		return nil, errors.New("signal: killed")
	case "lsblk":
		return []byte("NAME\nnvme0n1\n"), errors.New("exit status 32")
	}
	return []byte(name + " " + strings.Join(args, " ") + ": output\n"), nil
}

// untar returns the bundle's files by path below its top directory.
func untar(t *testing.T, b []byte) (string, map[string][]byte) {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	top := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		dir, rest, _ := strings.Cut(h.Name, "/")
		if top == "" {
			top = dir
		} else if dir != top {
			t.Errorf("%s outside the bundle's top directory %s", h.Name, top)
		}
		if h.Mode&0o077 != 0 {
			t.Errorf("%s has mode %o; bundle files are private", h.Name, h.Mode)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[rest] = data
	}
	return top, files
}

func TestCollectBundle(t *testing.T) {
	f := newFixture(t)
	r := &fakeRunner{journalKey: redacttest.Ed25519KeyPEM(t)}
	f.secrets = append(f.secrets, pemBody(r.journalKey)...)
	var out bytes.Buffer
	man, err := Collect(context.Background(), &out, Options{
		Root: f.root, CommandTimeout: 300 * time.Millisecond, MaxBytes: 64 << 10, Run: r.run, Version: "test",
		Extra: []Generated{{Path: "nodehealthd/status.txt", Make: func(context.Context) ([]byte, error) {
			return []byte("KernelReady False ForkFailedOutOfPIDs: kubelet: Unauthorized: token " + jwt + "\n"), nil
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	top, files := untar(t, out.Bytes())
	if !strings.HasPrefix(top, "nodehealthd-diag-ip-10-0-1-42.ec2.internal-") {
		t.Errorf("top directory %q does not name the host", top)
	}

	for _, p := range []string{
		"manifest.json", "errors.txt",
		"nodehealthd/state.json", "nodehealthd/status.txt", "nodehealthd/etc/config.yaml", "nodehealthd/etc/rules.d/local.yaml",
		"nodehealthd/rules.d/extra.yaml",
		"journal/nodehealthd.log", "journal/kubelet.log", "journal/containerd.log", "journal/nodeadm-config.log", "journal/nodeadm-run.log",
		"kernel/dmesg.txt", "kernel/sysctl.txt", "kernel/cmdline", "system/os-release",
		"system/units-failed.txt", "system/units.txt",
		"network/ip-addr.txt", "network/ip-route.txt", "network/ip-rule.txt", "network/resolv.conf", "network/cni-net.d/10-aws.conflist",
		"network/ipamd.log",
		"storage/mounts", "storage/df-h.txt", "storage/df-i.txt", "storage/lsblk.txt",
		"kubernetes/kubeconfig", "kubernetes/bootstrap-kubeconfig", "containerd/config.toml", "gpu/nvidia-smi-q.txt",
	} {
		if _, ok := files[p]; !ok {
			t.Errorf("bundle lacks %s", p)
		}
	}
	for _, p := range []string{"nodehealthd/etc/tls/metrics.key", "nodehealthd/etc/tls/client-key.pem", "network/nft-ruleset.txt", "network/iptables-save.txt"} {
		if _, ok := files[p]; ok {
			t.Errorf("bundle holds %s", p)
		}
	}
	if got := string(files["network/resolv.conf"]); got != "nameserver 127.0.0.53\n" {
		t.Errorf("resolv.conf = %q: its absolute symlink must resolve under --root", got)
	}
	if got := string(files["storage/lsblk.txt"]); !strings.Contains(got, "nvme0n1") {
		t.Errorf("output of a failing command dropped: %q", got)
	}
	if ipamd := files["network/ipamd.log"]; len(ipamd) != 64<<10 || !bytes.HasSuffix(ipamd, []byte("LAST LINE\n")) {
		t.Errorf("ipamd.log: %d bytes, want the last %d", len(ipamd), 64<<10)
	}

	var m Manifest
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if !m.Complete || m.Errors != man.Errors || m.Version != "test" {
		t.Errorf("manifest: complete=%v errors=%d (returned %d) version=%q", m.Complete, m.Errors, man.Errors, m.Version)
	}
	entry := func(source string) Entry {
		for _, e := range m.Entries {
			if e.Source == source {
				return e
			}
		}
		t.Errorf("manifest has no entry for %s", source)
		return Entry{}
	}
	for _, src := range []string{"/etc/nodehealthd/tls/metrics.key", "/etc/nodehealthd/tls/client-key.pem"} {
		if e := entry(src); !strings.Contains(e.Skipped, "private key") || e.Path != "" {
			t.Errorf("%s: %+v, want excluded for holding a private key", src, e)
		}
	}
	if e := entry("/var/log/aws-routed-eni/ipamd.log"); !e.Truncated {
		t.Errorf("ipamd.log entry not marked truncated: %+v", e)
	}
	if e := entry("/var/lib/kubelet/kubeconfig"); e.Redactions < 4 {
		t.Errorf("kubeconfig redactions = %d, want at least token, password, key data, env secret", e.Redactions)
	}

	errs := string(files["errors.txt"])
	for _, want := range []string{"nft list ruleset: command not found", "iptables-save: timed out (limit 300ms)", "lsblk -o", "exit status 32"} {
		if !strings.Contains(errs, want) {
			t.Errorf("errors.txt lacks %q:\n%s", want, errs)
		}
	}
	if n := strings.Count(errs, "\n"); n != m.Errors {
		t.Errorf("errors.txt has %d lines, manifest counts %d errors", n, m.Errors)
	}
	if strings.Contains(errs, "kubeconfig") || strings.Contains(errs, "resolv.conf") {
		t.Errorf("unexpected errors:\n%s", errs)
	}

	kc := string(files["kubernetes/kubeconfig"])
	for _, keep := range []string{"server: https://0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com", "command: aws", "AWS_PROFILE", "node-profile", f.cert, redact.Redacted} {
		if !strings.Contains(kc, keep) {
			t.Errorf("redacted kubeconfig lost %q:\n%s", keep, kc)
		}
	}
	var st state.State
	if err := json.Unmarshal(files["nodehealthd/state.json"], &st); err != nil || len(st.Active) != 1 {
		t.Errorf("state.json no longer parses after redaction (%v) or lost its finding", err)
	}

	var journalctl []string
	for _, c := range r.calls {
		if strings.HasPrefix(c, "journalctl") {
			journalctl = append(journalctl, c)
		}
	}
	if want := "journalctl --no-pager -o short-iso-precise -n 20000 --root " + f.root + " -u kubelet --since -86400s"; !slices.Contains(journalctl, want) {
		t.Errorf("kubelet journal not read as %q; journalctl calls:\n%s", want, strings.Join(journalctl, "\n"))
	}

	// The point of it all: no secret in any byte of any file.
	for name, data := range files {
		for _, s := range f.secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s contains secret %q", name, s)
			}
		}
	}
}

func TestCollectTimeLimit(t *testing.T) {
	f := newFixture(t)
	slow := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var out bytes.Buffer
	start := time.Now()
	man, err := Collect(context.Background(), &out, Options{Root: f.root, Timeout: 300 * time.Millisecond, CommandTimeout: time.Minute, Run: slow})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("collection took %s with a 300ms limit", d)
	}
	_, files := untar(t, out.Bytes())
	if man.Complete {
		t.Error("manifest says complete although the time limit cut it short")
	}
	if _, ok := files["nodehealthd/state.json"]; !ok {
		t.Error("the daemon's state, collected first, is missing")
	}
	errs := string(files["errors.txt"])
	if !strings.Contains(errs, "collection time limit") || !strings.Contains(errs, "dmesg -T: not collected") {
		t.Errorf("errors.txt does not list what the time limit left out:\n%s", errs)
	}
}

// TestCollectSections: a collection limited to sections holds those and
// nothing else (manifest and errors aside), and names them in the
// manifest; an unknown section is refused before anything is written.
func TestCollectSections(t *testing.T) {
	f := newFixture(t)
	var out bytes.Buffer
	r := &fakeRunner{}
	man, err := Collect(context.Background(), &out, Options{Root: f.root, Run: r.run, Sections: []string{"kernel", "nodehealthd"}})
	if err != nil {
		t.Fatal(err)
	}
	_, files := untar(t, out.Bytes())
	for name := range files {
		sec, _, _ := strings.Cut(name, "/")
		if sec != "kernel" && sec != "nodehealthd" && name != "manifest.json" && name != "errors.txt" {
			t.Errorf("%s is outside the sections asked for", name)
		}
	}
	for _, want := range []string{"kernel/cmdline", "nodehealthd/state.json"} {
		if _, ok := files[want]; !ok {
			t.Errorf("bundle lacks %s", want)
		}
	}
	if !slices.Equal(man.Sections, []string{"kernel", "nodehealthd"}) {
		t.Errorf("manifest sections %v", man.Sections)
	}
	out.Reset()
	if _, err := Collect(context.Background(), &out, Options{Root: f.root, Run: r.run, Sections: []string{"kernal"}}); err == nil || !strings.Contains(err.Error(), `"kernal"`) {
		t.Errorf("unknown section: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("%d bytes written for a refused collection", out.Len())
	}
}

// TestCollectDaemonPaths: with DaemonPaths the state and config come from
// the directories as given, the host's files still from under Root (the
// daemon in Bottlerocket's host container keeps its state outside Root).
func TestCollectDaemonPaths(t *testing.T) {
	f := newFixture(t)
	own := t.TempDir()
	put(t, own, "state/state.json", []byte(`{"version":1,"bootID":"daemon-own-state"}`))
	put(t, own, "etc/config.yaml", []byte("rulesDir: /nowhere\n"))
	var out bytes.Buffer
	r := &fakeRunner{}
	if _, err := Collect(context.Background(), &out, Options{Root: f.root, Run: r.run, DaemonPaths: true,
		StateDir: filepath.Join(own, "state"), ConfigDir: filepath.Join(own, "etc"), Sections: []string{"nodehealthd", "kernel"}}); err != nil {
		t.Fatal(err)
	}
	_, files := untar(t, out.Bytes())
	if !strings.Contains(string(files["nodehealthd/state.json"]), "daemon-own-state") {
		t.Errorf("state.json not from the daemon's own directory: %q", files["nodehealthd/state.json"])
	}
	if _, ok := files["nodehealthd/etc/config.yaml"]; !ok {
		t.Error("config not from the daemon's own directory")
	}
	if _, ok := files["kernel/cmdline"]; !ok {
		t.Error("host files no longer read under Root")
	}
}
