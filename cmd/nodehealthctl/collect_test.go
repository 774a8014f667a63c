package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/capture"
	"github.com/nodehealthd/nodehealthd/internal/diag/bundletest"
	"github.com/nodehealthd/nodehealthd/internal/diag/canary"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/s3upload/s3test"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// TestCollectCommand runs `nodehealthctl collect` with the real command
// runner against a fixture root, and checks that the views only
// nodehealthctl can render are in the bundle and the kubeconfig token is not.
func TestCollectCommand(t *testing.T) {
	root := t.TempDir()
	write := func(p, content string) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st := state.New("boot-1", time.Now())
	var ch state.Changes
	st.Raise(finding.Finding{Condition: finding.StorageReady, Reason: "XFSCorruption", Severity: finding.Fatal, Message: "XFS (nvme1n1): corruption detected",
		Source: "kmsg", Detected: time.Now(), LastSeen: time.Now(), Count: 1}, false, &ch)
	st.UpdateConditions([]string{finding.KernelReady, finding.StorageReady}, "", time.Now())
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	write("var/lib/nodehealthd/state.json", string(b))
	write("etc/nodehealthd/config.yaml", "reasons:\n  SoftLockup:\n    enabled: false\n")
	const token = "kubeconfig-static-token-do-not-leak"
	write("var/lib/kubelet/kubeconfig", "apiVersion: v1\nusers:\n- name: kubelet\n  user:\n    token: "+token+"\n")

	out := filepath.Join(t.TempDir(), "bundle.tar.gz")
	var stdout, stderr bytes.Buffer
	rc := run([]string{"collect", "-o", out, "--root", root, "--timeout", "60s", "--command-timeout", "5s"}, nil, &stdout, &stderr)
	if rc != 0 {
		t.Fatalf("collect exited %d: %s", rc, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Wrote "+out) {
		t.Errorf("no summary on stderr: %q", stderr.String())
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("bundle mode %v, want 0600", fi.Mode().Perm())
	}
	files := map[string]string{}
	for name, data := range bundletest.ReadFile(t, out) {
		files[name] = string(data)
	}
	if s := files["nodehealthd/status.txt"]; !strings.Contains(s, "StorageReady") || !strings.Contains(s, "XFSCorruption") {
		t.Errorf("status.txt is not the status view of the fixture state:\n%s", s)
	}
	if s := files["nodehealthd/rules.txt"]; !strings.Contains(s, "REASON") {
		t.Errorf("rules.txt is not the rules listing:\n%s", s)
	}
	for _, p := range []string{"manifest.json", "errors.txt", "kernel/uname.txt", "kubernetes/kubeconfig", "nodehealthd/etc/config.yaml"} {
		if _, ok := files[p]; !ok {
			t.Errorf("bundle lacks %s", p)
		}
	}
	for name, data := range files {
		if strings.Contains(data, token) {
			t.Errorf("%s contains the kubeconfig token", name)
		}
	}
}

// TestCollectCorpus is the acceptance check of the redaction corpus:
// `nodehealthctl collect --root CORPUS`, with the real commands, writes a
// bundle with none of the corpus's canaries in it, raw or decoded.
func TestCollectCorpus(t *testing.T) {
	canaries, err := canary.Load()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "bundle.tar.gz")
	var stdout, stderr bytes.Buffer
	rc := run([]string{"collect", "-o", out, "--root", filepath.Join(canary.Dir(), "corpus"), "--timeout", "60s", "--command-timeout", "5s"}, nil, &stdout, &stderr)
	if rc != 0 {
		t.Fatalf("collect exited %d: %s", rc, stderr.String())
	}
	files := bundletest.ReadFile(t, out)
	for _, p := range []string{"kubernetes/kubeconfig", "containerd/config.toml", "system/cloud-init-output.log", "system/cmdlines.txt", "nodehealthd/state.json", "nodehealthd/status.txt"} {
		if len(files[p]) == 0 {
			t.Errorf("bundle lacks %s", p)
		}
	}
	for _, l := range canary.Find(files, canaries) {
		t.Errorf("leaked: %s", l)
	}
}

// TestCollectUploadsToS3 is `nodehealthctl collect --upload` as the daemon
// runs it: the bundle lands in the bucket under the prefix with {node}
// filled in and the name asked for, credentials and region come from
// IMDSv2, and the JSON result line says where it went.
func TestCollectUploadsToS3(t *testing.T) {
	srv := s3test.Start(t, "diag")
	srv.Setenv(t)
	out := filepath.Join(t.TempDir(), "bundle.tar.gz.partial")
	var stdout, stderr bytes.Buffer
	rc := run([]string{"collect", "-o", out, "--root", t.TempDir(), "--sections", "kernel", "--command-timeout", "5s",
		"--upload", "s3://diag/nodes/{node}/", "--node", "node-a", "--upload-name", "b.tar.gz", "--result", "json"}, nil, &stdout, &stderr)
	if rc != 0 {
		t.Fatalf("collect exited %d: %s", rc, stderr.String())
	}
	var res capture.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("result line %q: %v", stdout.String(), err)
	}
	if res.Path != out || res.Bytes == 0 || res.Upload == nil || res.Upload.URL != "s3://diag/nodes/node-a/b.tar.gz" || res.Upload.Error != "" {
		t.Fatalf("result %+v (upload %+v)", res, res.Upload)
	}
	got, ok := srv.Object("diag", "nodes/node-a/b.tar.gz")
	want, _ := os.ReadFile(out)
	if !ok || !bytes.Equal(got, want) {
		t.Fatalf("object nodes/node-a/b.tar.gz: found %v; keys %v", ok, srv.Keys("diag"))
	}
	if srv.IMDSRequests("/latest/meta-data/iam/security-credentials/"+s3test.Role) == 0 {
		t.Error("credentials did not come from IMDS")
	}
}

// TestCollectUploadFailureKeepsBundle: a failed upload exits 1, keeps the
// bundle and says why in the result line.
func TestCollectUploadFailureKeepsBundle(t *testing.T) {
	srv := s3test.Start(t, "diag")
	srv.Setenv(t)
	srv.Fail.Store(true)
	out := filepath.Join(t.TempDir(), "bundle.tar.gz")
	var stdout, stderr bytes.Buffer
	rc := run([]string{"collect", "-o", out, "--root", t.TempDir(), "--sections", "kernel", "--command-timeout", "5s",
		"--upload", "s3://diag/p/", "--upload-timeout", "20s", "--result", "json"}, nil, &stdout, &stderr)
	if rc != 1 {
		t.Fatalf("collect exited %d, want 1: %s", rc, stderr.String())
	}
	var res capture.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("result line %q: %v", stdout.String(), err)
	}
	if res.Upload == nil || res.Upload.Error == "" || res.Upload.Attempts != 3 {
		t.Fatalf("upload result %+v, want an error after 3 attempts", res.Upload)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("bundle gone after a failed upload: %v", err)
	}
}

func TestCollectRefusesBadUploadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-o", "-", "--upload", "s3://b/"},
		{"-o", "x", "--upload", "https://b/"},
		{"-o", "x", "--sections", "kernal"},
		{"-o", "x", "--result", "yaml"},
	} {
		var stdout, stderr bytes.Buffer
		if rc := run(append([]string{"collect"}, args...), nil, &stdout, &stderr); rc != 2 {
			t.Errorf("collect %v exited %d, want 2 (%s)", args, rc, stderr.String())
		}
	}
}
