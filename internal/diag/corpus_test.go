package diag

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/diag/canary"
	"github.com/nodehealthd/nodehealthd/internal/redact"
)

// corpusRunner answers commands from testdata/corpus-commands, as the
// node of the corpus would: journals, ps and containerd's config with
// credentials in them.
func corpusRunner(t *testing.T) Runner {
	dir := filepath.Join(canary.Dir(), "corpus-commands")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		switch {
		case name == "journalctl" && slices.Contains(args, "kubelet"):
			return read("journal-kubelet.log"), nil
		case name == "journalctl" && slices.Contains(args, "containerd"):
			return read("journal-containerd.log"), nil
		case name == "containerd":
			return read("containerd-config-dump.toml"), nil
		case name == "ps":
			return read("ps.txt"), nil
		}
		return nil, nil
	}
}

// TestCorpus builds a bundle from the redaction corpus, a node's files
// with a canary planted in every credential form (testdata/canaries.txt),
// and fails if any canary is in the bundle, raw or decoded.
func TestCorpus(t *testing.T) {
	canaries, err := canary.Load()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, err = Collect(context.Background(), &out, Options{
		Root: filepath.Join(canary.Dir(), "corpus"), Run: corpusRunner(t), Timeout: time.Minute,
		Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, files := untar(t, out.Bytes())
	for _, l := range canary.Find(files, canaries) {
		t.Errorf("leaked: %s", l)
	}

	// What is useful stays.
	for file, keep := range map[string][]string{
		"kubernetes/kubeconfig":                     {"server: https://0123456789ABCDEF0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com", "certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0t", "command: /usr/bin/aws-iam-authenticator", "AWS_PROFILE", "proxy.corp.example.com:3128"},
		"containerd/config.toml":                    {"SystemdCgroup = true", "mirror.corp.example.com", "registry.corp.example.com"},
		"containerd/config-dump.toml":               {"mirror.corp.example.com"},
		"containerd/certs.d/docker.io/hosts.toml":   {"https://mirror.corp.example.com"},
		"containerd/docker-config.json":             {"ecr-login", "https://index.docker.io/v1/"},
		"system/environment":                        {"NO_PROXY=169.254.169.254", "@proxy.corp.example.com:3128"},
		"system/cmdlines.txt":                       {"4243 /opt/agent/bin/agent --password", "--endpoint=https://agent.example.com", "1234 /usr/bin/kubelet --config"},
		"system/environ/kubelet-1234":               {"NODEADM_KUBELET_ARGS=--node-ip=10.0.1.42", "PATH=/usr/bin:/bin"},
		"system/cloud-init-output.log":              {"+ git clone https://deploy:", "i-0123456789abcdef0"},
		"kubernetes/kubelet-environment":            {"--hostname-override=ip-10-0-1-42.ec2.internal"},
		"kubernetes/image-credential-provider.json": {"ecr-credential-provider", "--registry-token"},
		"nodehealthd/state.json":                    {"registry.corp.example.com/v2/app/manifests/v1: 401 Unauthorized"},
	} {
		data, ok := files[file]
		if !ok {
			t.Errorf("bundle lacks %s", file)
			continue
		}
		for _, k := range keep {
			if !bytes.Contains(data, []byte(k)) {
				t.Errorf("%s lost %q:\n%s", file, k, data)
			}
		}
	}
	for _, f := range []string{"nodehealthd/state.json", "containerd/docker-config.json", "kubernetes/image-credential-provider.json"} {
		if !json.Valid(files[f]) {
			t.Errorf("%s is no longer JSON:\n%s", f, files[f])
		}
	}

	// The manifest says what was redacted where, and what was left out.
	var m Manifest
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	bySource := map[string]Entry{}
	for _, e := range m.Entries {
		bySource[e.Source] = e
	}
	for src, classes := range map[string][]string{
		"/var/lib/kubelet/kubeconfig":     {redact.CredentialField, redact.Environment, redact.Assignment, redact.URLPassword},
		"/etc/containerd/config.toml":     {redact.CredentialField, redact.URLPassword},
		"/root/.docker/config.json":       {redact.CredentialField},
		"/etc/environment":                {redact.Environment, redact.URLPassword, redact.Token},
		"/var/log/cloud-init-output.log":  {redact.URLPassword, redact.Assignment, redact.CommandPassword, redact.PrivateKey, redact.AWSKey, redact.AWSSessionToken, redact.Token},
		"/var/log/messages":               {redact.Authorization, redact.JWT, redact.PrivateKey, redact.AWSKey, redact.URLPassword, redact.Assignment},
		"/proc/*/cmdline":                 {redact.CommandPassword, redact.Assignment, redact.URLPassword},
		"/proc/1234/environ":              {redact.Environment, redact.URLPassword},
		"/var/lib/nodehealthd/state.json": {redact.URLPassword},
	} {
		e := bySource[src]
		for _, class := range classes {
			if e.Redacted[class] == 0 {
				t.Errorf("manifest entry for %s does not count %s: %+v", src, class, e)
			}
		}
		if e.Redactions == 0 || e.Path == "" {
			t.Errorf("manifest entry for %s: %+v", src, e)
		}
	}
	if e := bySource["/var/lib/cloud/instance/user-data.txt"]; e.Path != "" || !strings.Contains(e.Skipped, "user data") {
		t.Errorf("user data not left out: %+v", e)
	}
	if e := bySource["/etc/kubernetes/kubelet/kubeconfig"]; e.Path != "" || !strings.Contains(e.Error, "left out") || !strings.Contains(e.Error, "YAML") {
		t.Errorf("a kubeconfig that does not parse must be left out: %+v", e)
	}
	if _, ok := files["kubernetes/kubelet-kubeconfig"]; ok {
		t.Error("the kubeconfig that does not parse is in the bundle")
	}
	if !strings.Contains(string(files["errors.txt"]), "/etc/kubernetes/kubelet/kubeconfig: left out") {
		t.Errorf("errors.txt does not say the unparseable kubeconfig was left out:\n%s", files["errors.txt"])
	}
}
