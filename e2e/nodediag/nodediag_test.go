//go:build linux

// Package nodediag tests NodeDiagnostic requests end to end: the shipped
// CRD and RBAC applied to a real etcd + kube-apiserver (Node and RBAC
// authorization, NodeRestriction), the real nodehealthd and nodehealthctl
// with a kubelet identity for node-a, and a presigned-URL stand-in on
// loopback. Without KUBE_BIN_DIR the tests skip.
package nodediag

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/nodehealthd/nodehealthd/e2e/internal/daemontest"
	"github.com/nodehealthd/nodehealthd/e2e/internal/kubetest"
	"github.com/nodehealthd/nodehealthd/e2e/internal/testbin"
	"github.com/nodehealthd/nodehealthd/internal/diag/bundletest"
)

var (
	ndGVR   = schema.GroupVersionResource{Group: "eks.amazonaws.com", Version: "v1alpha1", Resource: "nodediagnostics"}
	crdGVR  = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	resOf   = map[string]schema.GroupVersionResource{"CustomResourceDefinition": crdGVR, "ClusterRole": {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, "ClusterRoleBinding": {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}}
	repoDir = filepath.Join("..", "..")
)

func startCluster(t *testing.T) *kubetest.Cluster {
	t.Helper()
	if _, err := kubetest.BinDir(); err != nil {
		t.Skipf("no kube-apiserver/etcd to test against: %v", err)
	}
	dir := t.TempDir()
	c, err := kubetest.Start(dir, kubetest.Options{})
	if err != nil {
		t.Fatalf("start etcd + kube-apiserver: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

func dyn(t *testing.T, cfg *rest.Config) *dynamic.DynamicClient {
	t.Helper()
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// apply creates every object of a manifest with the admin identity.
func apply(t *testing.T, c *kubetest.Cluster, file string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoDir, "packaging/kubernetes", file))
	if err != nil {
		t.Fatal(err)
	}
	d := dyn(t, c.AdminCfg)
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if u.Object == nil {
			continue
		}
		gvr, ok := resOf[u.GetKind()]
		if !ok {
			t.Fatalf("%s: unexpected kind %s", file, u.GetKind())
		}
		if _, err := d.Resource(gvr).Create(context.Background(), &u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("%s: create %s %s: %v", file, u.GetKind(), u.GetName(), err)
		}
	}
}

func installCRD(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	apply(t, c, "nodediagnostic-crd.yaml")
	d := dyn(t, c.AdminCfg)
	daemontest.Eventually(t, 30*time.Second, "CRD established", func() (bool, string) {
		u, err := d.Resource(crdGVR).Get(context.Background(), "nodediagnostics.eks.amazonaws.com", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, ""
			}
		}
		return false, fmt.Sprint(conds)
	})
}

func nodeDiagnostic(name, dest string, categories ...string) *unstructured.Unstructured {
	cats := make([]any, len(categories))
	for i, c := range categories {
		cats[i] = c
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "eks.amazonaws.com/v1alpha1", "kind": "NodeDiagnostic",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"logCapture": map[string]any{"destination": dest, "categories": cats}},
	}}
}

// nodeIdentity is node's kubelet client certificate as a rest.Config,
// and, when root is set, as the kubeadm-style kubelet.conf and files under
// root that the daemon discovers (host paths, read under --root).
func nodeIdentity(t *testing.T, c *kubetest.Cluster, node, root string) *rest.Config {
	t.Helper()
	id, err := c.CA.ClientCert("system:node:"+node, "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	if root != "" {
		pem := "/var/lib/kubelet/pki/kubelet-client-current.pem"
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(pem)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pem), append(id.CertPEM, id.KeyPEM...), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteKubeconfig(filepath.Join(root, "etc/kubernetes/kubelet.conf"), "/etc/kubernetes/pki/ca.crt",
			filepath.Join(root, "etc/kubernetes/pki/ca.crt"), kubetest.User{CertFile: pem, KeyFile: pem}); err != nil {
			t.Fatal(err)
		}
	}
	return &rest.Config{Host: c.Host, TLSClientConfig: rest.TLSClientConfig{CAData: c.CA.CertPEM, CertData: id.CertPEM, KeyData: id.KeyPEM}}
}

// TestShippedRBACLetsNodesServeRequests: without the shipped RBAC a node
// may not read NodeDiagnostics; with it, it may get, list and watch them
// and patch their status, and still not change their spec or delete them.
func TestShippedRBACLetsNodesServeRequests(t *testing.T) {
	c := startCluster(t)
	installCRD(t, c)
	ctx := context.Background()
	admin := dyn(t, c.AdminCfg).Resource(ndGVR)
	if _, err := admin.Create(ctx, nodeDiagnostic("node-a", "node", "Base"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := nodeIdentity(t, c, "node-a", "")
	asNode := dyn(t, cfg).Resource(ndGVR)
	if _, err := asNode.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=node-a"}); !apierrors.IsForbidden(err) {
		t.Fatalf("list without the RBAC: %v, want forbidden", err)
	}
	apply(t, c, "nodediagnostic-rbac.yaml")
	daemontest.Eventually(t, 30*time.Second, "node may list its NodeDiagnostic", func() (bool, string) {
		_, err := asNode.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=node-a"})
		return err == nil, fmt.Sprint(err)
	})
	if _, err := asNode.Get(ctx, "node-a", metav1.GetOptions{}); err != nil {
		t.Fatalf("get: %v", err)
	}
	w, err := asNode.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=node-a"})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	w.Stop()
	patch := []byte(`{"status":{"captureStatuses":[{"type":"Log","state":{"running":{"startedAt":"2026-01-01T00:00:00Z"}}}]}}`)
	if _, err := asNode.Patch(ctx, "node-a", types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatalf("patch status: %v", err)
	}
	if _, err := asNode.Patch(ctx, "node-a", types.MergePatchType, []byte(`{"spec":{"logCapture":{"destination":"https://evil/"}}}`), metav1.PatchOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("patch spec: %v, want forbidden", err)
	}
	if err := asNode.Delete(ctx, "node-a", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("delete: %v, want forbidden", err)
	}
}

// receiver is the presigned-URL stand-in: it keeps every PUT body.
type receiver struct {
	mu    sync.Mutex
	puts  map[string][][]byte
	query map[string]string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, err := io.ReadAll(req.Body)
	if req.Method != http.MethodPut || err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.puts[req.URL.Path] = append(r.puts[req.URL.Path], b)
	r.query[req.URL.Path] = req.URL.RawQuery
	r.mu.Unlock()
}

func (r *receiver) got(path string) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.puts[path]
}

// tarSections lists the sections (top-level directories) of a bundle.
func tarSections(t *testing.T, b []byte) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for p := range bundletest.Read(t, bytes.NewReader(b)) {
		sec, _, _ := strings.Cut(p, "/")
		out[sec] = true
	}
	return out
}

func startDaemon(t *testing.T, work, node string) *daemontest.Daemon {
	t.Helper()
	return daemontest.Start(t, []string{"--root", filepath.Join(work, "root"),
		"--state-dir", filepath.Join(work, "state"), "--config", filepath.Join(work, "config.yaml"),
		"--rules-dir", filepath.Join(work, "rules.d"), "--node-name", node,
		"-o", "none", "--metrics-address=", "--log-level", "debug"},
		daemontest.Options{Env: []string{"PATH=" + filepath.Join(work, "bin") + string(os.PathListSeparator) + os.Getenv("PATH")}, KillAfter: 15 * time.Second})
}

// TestRequestedCaptureUploadedOnce is the acceptance: the daemon,
// with node-a's kubelet credentials and the shipped manifests, uploads a
// tar.gz with the requested categories to the presigned URL, reports
// completed/Success with the generation, ignores node-b's request, and
// does not upload again after a restart.
func TestRequestedCaptureUploadedOnce(t *testing.T) {
	c := startCluster(t)
	installCRD(t, c)
	apply(t, c, "nodediagnostic-rbac.yaml")
	ctx := context.Background()
	for _, n := range []string{"node-a", "node-b"} {
		if _, err := c.Admin.Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	recv := &receiver{puts: map[string][][]byte{}, query: map[string]string{}}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	const sig = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=e2esecretsignature"
	admin := dyn(t, c.AdminCfg).Resource(ndGVR)
	if _, err := admin.Create(ctx, nodeDiagnostic("node-b", srv.URL+"/node-b.tar.gz?"+sig, "All"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Create(ctx, nodeDiagnostic("node-a", srv.URL+"/node-a.tar.gz?"+sig, "Networking", "Base"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	work := t.TempDir()
	nodeIdentity(t, c, "node-a", filepath.Join(work, "root"))
	// The fixture node: a process to list, and stand-ins for the
	// commands of the requested sections that a test machine may lack
	// (no iptables, no systemd bus), so that a complete bundle is the
	// daemon's doing and the status can be Success.
	for p, content := range map[string]string{"root/proc/sys/kernel/hostname": "node-a\n", "root/proc/1/cmdline": "/sbin/init\x00", "rules.d/.keep": ""} {
		daemontest.Write(t, filepath.Join(work, p), content)
	}
	for _, cmd := range []string{"iptables-save", "ip6tables-save", "nft", "systemctl"} {
		p := filepath.Join(work, "bin", cmd)
		daemontest.Write(t, p, "#!/bin/sh\necho \"e2e stand-in for $0\"\n")
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	daemontest.Write(t, filepath.Join(work, "config.yaml"), testbin.NoProbes+"diagnostics:\n  dir: "+filepath.Join(work, "diagnostics")+
		"\n  requests: {nodeDir: "+filepath.Join(work, "support")+"}\n")
	d := startDaemon(t, work, "node-a")

	var completed map[string]any
	d.Eventually(t, 90*time.Second, "node-a's NodeDiagnostic completed", func() (bool, string) {
		u, err := admin.Get(ctx, "node-a", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		sts, _, _ := unstructured.NestedSlice(u.Object, "status", "captureStatuses")
		for _, s := range sts {
			m, _ := s.(map[string]any)
			if c, ok, _ := unstructured.NestedMap(m, "state", "completed"); ok && m["type"] == "Log" {
				completed = c
				return c["observedGeneration"] == u.GetGeneration(), fmt.Sprint(sts)
			}
		}
		return false, fmt.Sprint(sts)
	})
	if completed["reason"] != "Success" || completed["startedAt"] == nil || completed["finishedAt"] == nil {
		t.Fatalf("completed %v: want Success with startedAt and finishedAt", completed)
	}
	if msg, _ := completed["message"].(string); strings.Contains(msg, "e2esecretsignature") {
		t.Fatalf("the status message holds the presigned URL's signature: %q", msg)
	}
	if strings.Contains(d.Log.String(), "e2esecretsignature") {
		t.Fatalf("the daemon logged the presigned URL's signature")
	}
	got := recv.got("/node-a.tar.gz")
	if len(got) != 1 {
		t.Fatalf("uploads to node-a's URL: %d, want 1", len(got))
	}
	secs := tarSections(t, got[0])
	for _, want := range []string{"network", "system", "nodehealthd"} {
		if !secs[want] {
			t.Errorf("bundle lacks section %s (has %v)", want, secs)
		}
	}
	for _, unwanted := range []string{"containerd", "kubernetes", "kernel"} {
		if secs[unwanted] {
			t.Errorf("bundle has section %s, not requested (has %v)", unwanted, secs)
		}
	}

	// Restart: no second capture, and node-b's request is still ignored.
	d.Stop(syscall.SIGTERM)
	d2 := startDaemon(t, work, "node-a")
	d2.Eventually(t, time.Minute, "restarted daemon follows its NodeDiagnostic", func() (bool, string) {
		return strings.Contains(d2.Log.String(), "publishing to the cluster"), "not connected"
	})
	// The restarted daemon lists the object at once on connecting; give
	// it the time a capture takes to start before counting.
	time.Sleep(5 * time.Second)
	if n := len(recv.got("/node-a.tar.gz")); n != 1 {
		t.Fatalf("uploads after a restart: %d, want still 1", n)
	}
	if n := len(recv.got("/node-b.tar.gz")); n != 0 {
		t.Fatalf("node-a's daemon served node-b's request (%d uploads)", n)
	}
	ub, err := admin.Get(ctx, "node-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sts, ok, _ := unstructured.NestedSlice(ub.Object, "status", "captureStatuses"); ok {
		t.Fatalf("node-b's status written by node-a's daemon: %v", sts)
	}
}
