//go:build linux

package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/nodehealthd/nodehealthd/e2e/internal/daemontest"
	"github.com/nodehealthd/nodehealthd/e2e/internal/kubetest"
	"github.com/nodehealthd/nodehealthd/e2e/internal/testbin"
	"github.com/nodehealthd/nodehealthd/internal/logging/logtest"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// The tests share one etcd + kube-apiserver (started on first use, about
// 5 s) and use a node name of their own; they do not run in parallel,
// since one of them stops the API server.
var (
	kubeOnce sync.Once
	kube     *kubetest.Cluster
	kubeErr  error
	kubeDir  string
)

// Static tokens for the exec-plugin test: the API server maps the token to
// a kubelet identity, as it would an IAM token on EKS.
const (
	execToken     = "nhd-e2e-exec-token-3f9a"
	hungExecToken = "nhd-e2e-exec-token-7c21"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if kube != nil {
		kube.Stop()
	}
	if kubeDir != "" && code == 0 {
		os.RemoveAll(kubeDir)
	} else if kubeDir != "" {
		fmt.Fprintf(os.Stderr, "cluster files kept in %s\n", kubeDir)
	}
	os.Exit(code)
}

// cluster returns the shared cluster, skipping the test when the binaries
// are missing.
func cluster(t *testing.T) *kubetest.Cluster {
	t.Helper()
	if _, err := kubetest.BinDir(); err != nil {
		t.Skipf("no kube-apiserver/etcd to test against: %v", err)
	}
	kubeOnce.Do(func() {
		kubeDir, kubeErr = os.MkdirTemp("", "nodehealthd-kube-")
		if kubeErr != nil {
			return
		}
		start := time.Now()
		kube, kubeErr = kubetest.Start(kubeDir, kubetest.Options{Tokens: []kubetest.Token{
			{Token: execToken, User: "system:node:node-exec", UID: "node-exec-uid", Groups: []string{"system:nodes"}},
			{Token: hungExecToken, User: "system:node:node-exec-hung", UID: "node-exec-hung-uid", Groups: []string{"system:nodes"}},
		}})
		if kubeErr == nil {
			t.Logf("etcd + kube-apiserver ready in %v", time.Since(start).Round(time.Millisecond))
		}
	})
	if kubeErr != nil {
		t.Fatalf("start etcd + kube-apiserver: %v", kubeErr)
	}
	return kube
}

// rules are the operator rules of the fixture node: a log file and the
// kmsg text file stand in for a node's logs.
const rules = `rules:
  - name: E2ERuntimeBroken
    condition: ContainerRuntimeReady
    reason: E2ERuntimeBroken
    severity: Fatal
    source: file
    paths: [/var/log/e2e/app.log]
    patterns: ['FATAL (?P<what>\S+)']
    key: '${what}'
    message: 'runtime broken: ${what}'
  - name: E2ERuntimeHiccup
    condition: ContainerRuntimeReady
    reason: E2ERuntimeHiccup
    severity: Warning
    source: file
    paths: [/var/log/e2e/app.log]
    patterns: ['WARN (?P<what>\S+)']
    message: 'runtime hiccup: ${what}'
  - name: E2EBurst
    condition: NetworkingReady
    reason: 'E2EBurst${r}'
    severity: Warning
    source: file
    paths: [/var/log/e2e/app.log]
    patterns: ['BURST (?P<r>\d) (?P<n>\d+)']
    message: 'burst ${n}'
  - name: E2EKernelOops
    condition: KernelReady
    reason: E2EKernelOops
    severity: Fatal
    source: kmsg
    patterns: ['e2e-oops (?P<what>\S+)']
    message: 'oops ${what}'
  - name: E2EKernelNoise
    condition: KernelReady
    reason: E2EKernelNoise
    severity: Warning
    source: kmsg
    patterns: ['e2e-noise (?P<what>\S+)']
    message: 'noise ${what}'
`

// agent is a fixture node root and the real nodehealthd running on it.
type agent struct {
	t        *testing.T
	node     string
	root     string
	stateDir string
	rulesDir string
	config   string
	diagDir  string // where Fatal findings leave their diagnostics bundles
	appLog   string
	certDir  string // host path of the kubelet's pki dir, under root
	args     []string

	d       *daemontest.Daemon // the running daemon; nil when stopped
	logs    *logtest.Buffer    // every run's output
	peakRSS int64
	rssMu   sync.Mutex
}

// The e2e packages' generic helpers under the names this package's tests
// use.
func write(t *testing.T, path, content string) {
	t.Helper()
	daemontest.Write(t, path, content)
}

func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	return daemontest.Eventually(t, d, what, cond)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newAgent lays out a fixture root: boot facts, /dev/kmsg as a text file
// holding kmsg (read once at start), an empty application log that the
// tests append to, and the operator rules.
func newAgent(t *testing.T, node, kmsg string) *agent {
	t.Helper()
	work := t.TempDir()
	a := &agent{
		t: t, node: node, root: filepath.Join(work, "root"), stateDir: filepath.Join(work, "state"),
		rulesDir: filepath.Join(work, "rules.d"), logs: &logtest.Buffer{},
	}
	a.config = filepath.Join(a.root, "etc/nodehealthd/config.yaml")
	a.appLog = filepath.Join(a.root, "var/log/e2e/app.log")
	a.certDir = "/var/lib/kubelet/pki"
	daemontest.WriteBoot(t, a.root, "e2e00000-0000-4000-8000-"+randomHex(6))
	write(t, filepath.Join(a.root, "dev/kmsg"), kmsg)
	write(t, a.appLog, "")
	write(t, filepath.Join(a.rulesDir, "e2e.yaml"), rules)
	a.diagDir = filepath.Join(work, "diagnostics")
	a.writeConfig("")
	// Registered before any daemon's stop, so it runs after them, on a
	// complete log.
	a.logs.LogOnFailure(t, "nodehealthd ("+node+")")
	return a
}

// writeConfig writes the daemon's config.yaml: extra, with the host probes
// off and a diagnostics directory of the test's own. Probes run against
// this machine and would add their own warnings (an unsynchronised clock,
// ip_forward) at random times, and these tests count the findings they
// inject; a Fatal finding's bundle must never land in this machine's
// /var/log.
func (a *agent) writeConfig(extra string) {
	a.t.Helper()
	write(a.t, a.config, testbin.NoProbes+extra+"diagnostics:\n  dir: "+a.diagDir+"\n")
}

// installCert gives the fixture node a kubelet client certificate the way
// kubeadm and Bottlerocket lay it out: a dated file and the
// kubelet-client-current.pem symlink the kubelet re-points on rotation,
// named by /etc/kubernetes/kubelet.conf with host paths.
func (a *agent) installCert(id kubetest.Issued) {
	a.t.Helper()
	dir := filepath.Join(a.root, a.certDir)
	name := fmt.Sprintf("kubelet-client-%d.pem", time.Now().UnixNano())
	write(a.t, filepath.Join(dir, name), string(id.CertPEM)+string(id.KeyPEM))
	link := filepath.Join(dir, "kubelet-client-current.pem")
	tmp := link + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(name, tmp); err != nil {
		a.t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		a.t.Fatal(err)
	}
}

// useNodeCert issues a kubelet identity for the node and writes the
// kubeadm-style kubeconfig the daemon discovers under --root.
func (a *agent) useNodeCert(c *kubetest.Cluster, groups ...string) kubetest.Issued {
	a.t.Helper()
	id, err := c.CA.ClientCert("system:node:"+a.node, append([]string{"system:nodes"}, groups...)...)
	if err != nil {
		a.t.Fatal(err)
	}
	a.installCert(id)
	cur := a.certDir + "/kubelet-client-current.pem"
	if err := c.WriteKubeconfig(filepath.Join(a.root, "etc/kubernetes/kubelet.conf"), "/etc/kubernetes/pki/ca.crt",
		filepath.Join(a.root, "etc/kubernetes/pki/ca.crt"), kubetest.User{CertFile: cur, KeyFile: cur}); err != nil {
		a.t.Fatal(err)
	}
	return id
}

// enrol creates the Node and a fixture agent for it (kmsg as for newAgent)
// holding the node's kubelet client certificate.
func enrol(t *testing.T, c *kubetest.Cluster, node, kmsg string) *agent {
	t.Helper()
	createNode(t, c, node)
	a := newAgent(t, node, kmsg)
	a.useNodeCert(c)
	return a
}

// startConnected starts the daemon and waits until it publishes.
func (a *agent) startConnected(extra ...string) {
	a.t.Helper()
	a.start(extra...)
	a.connected(30 * time.Second)
}

func (a *agent) start(extra ...string) {
	a.t.Helper()
	args := []string{"--root", a.root, "--state-dir", a.stateDir, "--rules-dir", a.rulesDir, "--config", a.config,
		"-o", "none", "--metrics-address=", "--log-level", "debug"}
	args = append(append(args, a.args...), extra...)
	a.d = daemontest.Start(a.t, args, daemontest.Options{Log: a.logs})
	go a.sampleRSS(a.d)
}

// stop ends the daemon with sig (SIGKILL for a crash).
func (a *agent) stop(sig syscall.Signal) {
	if a.d == nil {
		return
	}
	a.d.Stop(sig)
	a.d = nil
}

func (a *agent) sampleRSS(d *daemontest.Daemon) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if kb, err := daemontest.StatusKB(d.Pid(), "VmHWM"); err == nil {
			a.rssMu.Lock()
			a.peakRSS = max(a.peakRSS, kb)
			a.rssMu.Unlock()
		}
		select {
		case <-d.Exited():
			return
		case <-tick.C:
		}
	}
}

// peak returns the highest resident set size seen, in MiB.
func (a *agent) peak() float64 {
	a.rssMu.Lock()
	defer a.rssMu.Unlock()
	return float64(a.peakRSS) / 1024
}

// appendLine appends to the fixture's application log and returns when.
func (a *agent) appendLine(line string) time.Time {
	a.t.Helper()
	f, err := os.OpenFile(a.appLog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		a.t.Fatal(err)
	}
	defer f.Close()
	at := time.Now()
	if _, err := f.WriteString(line + "\n"); err != nil {
		a.t.Fatal(err)
	}
	return at
}

func (a *agent) state() *state.State {
	st, err := state.Read(a.stateDir)
	if err != nil {
		return nil
	}
	return st
}

func createNode(t *testing.T, c *kubetest.Cluster, name string) *corev1.Node {
	t.Helper()
	n, err := c.Admin.Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	return n
}

func getNode(t *testing.T, c *kubetest.Cluster, name string) *corev1.Node {
	t.Helper()
	n, err := c.Admin.Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get node %s: %v", name, err)
	}
	return n
}

func cond(n *corev1.Node, typ string) *corev1.NodeCondition {
	if n == nil {
		return nil
	}
	for i := range n.Status.Conditions {
		if string(n.Status.Conditions[i].Type) == typ {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func condTypes(n *corev1.Node) []string {
	var out []string
	if n == nil {
		return out
	}
	for _, c := range n.Status.Conditions {
		out = append(out, string(c.Type)+"="+string(c.Status)+"/"+c.Reason)
	}
	sort.Strings(out)
	return out
}

// nodeEvents lists the events about a node.
func nodeEvents(t *testing.T, c *kubetest.Cluster, node string) []corev1.Event {
	t.Helper()
	l, err := c.Admin.Events("default").List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", node).String(),
	})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	return l.Items
}

// reasonEvents lists the events about a node with this reason (host
// probes may add events of their own, e.g. ClockUnsynchronized).
func reasonEvents(t *testing.T, c *kubetest.Cluster, node, reason string) []corev1.Event {
	t.Helper()
	var out []corev1.Event
	for _, e := range nodeEvents(t, c, node) {
		if e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// statusClusterLine is the "Cluster:" line of nodehealthctl status.
func statusClusterLine(t *testing.T, stateDir string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(testbin.Build(t), "nodehealthctl"), "status", "--state-dir", stateDir).CombinedOutput()
	if err != nil {
		t.Fatalf("nodehealthctl status: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Cluster:") {
			return l
		}
	}
	return ""
}

func findEvent(evs []corev1.Event, reason, message string) *corev1.Event {
	for i := range evs {
		if evs[i].Reason == reason && evs[i].Message == message {
			return &evs[i]
		}
	}
	return nil
}

// recorder keeps every version of a Node and every event about it, with
// when the admin watch delivered it: the tests' view of "reached the API".
type recorder struct {
	nodes  deliveries[*corev1.Node]
	events deliveries[*corev1.Event]
}

// deliveries are the objects of one kind a watch delivered, deletions
// left out.
type deliveries[T any] struct {
	mu   sync.Mutex
	seen []delivery[T]
}

type delivery[T any] struct {
	at  time.Time
	obj T
}

func record(t *testing.T, c *kubetest.Cluster, node string) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &recorder{}
	nw, err := c.Admin.Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", node).String()})
	if err != nil {
		t.Fatal(err)
	}
	ew, err := c.Admin.Events("default").Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("involvedObject.name", node).String()})
	if err != nil {
		t.Fatal(err)
	}
	go r.nodes.follow(nw)
	go r.events.follow(ew)
	return r
}

func (d *deliveries[T]) follow(w watch.Interface) {
	for ev := range w.ResultChan() {
		if obj, ok := ev.Object.(T); ok && ev.Type != watch.Deleted {
			d.mu.Lock()
			d.seen = append(d.seen, delivery[T]{at: time.Now(), obj: obj})
			d.mu.Unlock()
		}
	}
}

// first returns when an object satisfying f was first delivered after
// since.
func (d *deliveries[T]) first(since time.Time, f func(T) bool) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.seen {
		if !s.at.Before(since) && f(s.obj) {
			return s.at, true
		}
	}
	return time.Time{}, false
}

func (d *deliveries[T]) all() []delivery[T] {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]delivery[T](nil), d.seen...)
}

// wait waits until an object satisfying f is delivered after since and
// returns the delay from since.
func (d *deliveries[T]) wait(t *testing.T, since time.Time, timeout time.Duration, what string, f func(T) bool) time.Duration {
	t.Helper()
	var at time.Time
	eventually(t, timeout, what, func() (bool, string) {
		var ok bool
		at, ok = d.first(since, f)
		return ok, "not seen"
	})
	return at.Sub(since)
}

// following waits until the daemon follows the application log: lines
// appended before that count as history from before the daemon and are
// skipped.
func (a *agent) following(d time.Duration) {
	a.t.Helper()
	eventually(a.t, d, "daemon follows the application log", func() (bool, string) {
		st := a.state()
		if st == nil {
			return false, "no state"
		}
		_, ok := st.Positions["file:/var/log/e2e/app.log"]
		return ok, fmt.Sprintf("positions %v", st.Positions)
	})
}

// connected waits until the daemon reports a working cluster link.
func (a *agent) connected(d time.Duration) {
	a.t.Helper()
	eventually(a.t, d, "daemon connected to the API server", func() (bool, string) {
		st := a.state()
		if st == nil || st.Cluster == nil {
			return false, "no cluster link in state"
		}
		return st.Cluster.Connected && st.Cluster.PendingWrites == 0, fmt.Sprintf("%+v", *st.Cluster)
	})
	if a.appLog != "" {
		a.following(d)
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
