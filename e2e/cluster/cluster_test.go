//go:build linux

// Package cluster tests cluster publishing end to end: the real nodehealthd
// binary, a real etcd and kube-apiserver with Node authorization and
// NodeRestriction, and kubelet identities (client certificates
// CN=system:node:<name>, O=system:nodes, or a token from an exec plugin).
// Without KUBE_BIN_DIR the tests skip; scripts/kube-bins.sh builds the
// binaries.
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	"github.com/nodehealthd/nodehealthd/e2e/internal/daemontest"
	"github.com/nodehealthd/nodehealthd/e2e/internal/kubetest"
	"github.com/nodehealthd/nodehealthd/e2e/internal/testbin"
	"github.com/nodehealthd/nodehealthd/internal/logging/logtest"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// ourTypes are the condition types a node without accelerators gets.
var ourTypes = []string{"KernelReady", "ContainerRuntimeReady", "NetworkingReady", "StorageReady"}

// TestKmsgFindingBecomesConditionAndEvent writes records into the host's
// real /dev/kmsg: a Fatal finding must turn a condition False on the Node
// and a Warning finding must become an Event, each within 2 s of the write.
// Forty samples give the finding-to-API latency.
func TestKmsgFindingBecomesConditionAndEvent(t *testing.T) {
	daemontest.RequireKmsg(t)
	c := cluster(t)
	const node = "node-kmsg"
	n := createNode(t, c, node)
	work := t.TempDir()
	id, err := c.CA.ClientCert("system:node:"+node, "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(work, "pki/node.crt"), string(id.CertPEM))
	write(t, filepath.Join(work, "pki/node.key"), string(id.KeyPEM))
	kubeconfig := filepath.Join(work, "kubeconfig")
	if err := c.WriteKubeconfig(kubeconfig, filepath.Join(work, "pki/ca.crt"), filepath.Join(work, "pki/ca.crt"),
		kubetest.User{CertFile: filepath.Join(work, "pki/node.crt"), KeyFile: filepath.Join(work, "pki/node.key")}); err != nil {
		t.Fatal(err)
	}
	// The host ring is shared with other tests and the catalogue reads it
	// too: operator rules keyed on a unique token, on a condition no
	// catalogue kmsg rule feeds.
	tok := randomHex(4)
	a := &agent{t: t, node: node, root: "/", stateDir: filepath.Join(work, "state"), rulesDir: filepath.Join(work, "rules.d"),
		config: filepath.Join(work, "config.yaml"), diagDir: filepath.Join(work, "diagnostics"), logs: &logtest.Buffer{}}
	a.logs.LogOnFailure(t, "nodehealthd ("+node+")")
	write(t, filepath.Join(a.rulesDir, "e2e.yaml"), `rules:
  - name: E2EKmsgFault
    condition: ContainerRuntimeReady
    reason: E2EKmsgFault
    severity: Fatal
    source: kmsg
    patterns: ['nhd-e2e-`+tok+` fatal (?P<n>\d+)']
    key: '${n}'
    message: 'fault ${n}'
  - name: E2EKmsgWarning
    condition: ContainerRuntimeReady
    reason: E2EKmsgWarning
    severity: Warning
    source: kmsg
    patterns: ['nhd-e2e-`+tok+` warn (?P<n>\d+)']
    message: 'warning ${n}'
`)
	rec := record(t, c, node)
	// A budget large enough that forty back-to-back samples measure
	// latency, not the write budget (which TestWriteBudget checks).
	a.writeConfig("cluster: {writeBurst: 1000, writesPerMinute: 6000, eventBurst: 1000, eventsPerMinute: 6000}\n")
	a.startConnected("--kubeconfig", kubeconfig)

	kmsg := func(msg string) time.Time { return daemontest.WriteKmsg(t, msg) }
	const samples = 20
	var condLat, eventLat []time.Duration
	for i := 1; i <= samples; i++ {
		key := fmt.Sprintf("%03d", i)
		at := kmsg("nhd-e2e-" + tok + " fatal " + key)
		d := rec.nodes.wait(t, at, 2*time.Second, "Fatal kmsg finding "+key+" on the Node", func(n *corev1.Node) bool {
			c := cond(n, "ContainerRuntimeReady")
			return c != nil && c.Status == corev1.ConditionFalse && c.Reason == "E2EKmsgFault" && strings.Contains(c.Message, "fault "+key)
		})
		condLat = append(condLat, d)
		at = kmsg("nhd-e2e-" + tok + " warn " + key)
		d = rec.events.wait(t, at, 2*time.Second, "Warning kmsg finding "+key+" as an Event", func(e *corev1.Event) bool {
			return e.Reason == "E2EKmsgWarning" && e.Message == "warning "+key
		})
		eventLat = append(eventLat, d)
		time.Sleep(50 * time.Millisecond)
	}

	// The condition honours the contract: reason of the oldest finding,
	// lastTransitionTime from the state (the first detection).
	st := a.state()
	got := cond(getNode(t, c, node), "ContainerRuntimeReady")
	want := st.Conditions["ContainerRuntimeReady"]
	if !got.LastTransitionTime.Time.Equal(want.LastTransitionTime.Truncate(time.Second)) {
		t.Errorf("lastTransitionTime %v, state says %v", got.LastTransitionTime.Time, want.LastTransitionTime)
	}
	if !strings.HasPrefix(got.Message, "E2EKmsgFault: fault 001") {
		t.Errorf("message should list the oldest finding first: %q", got.Message)
	}
	evs := nodeEvents(t, c, node)
	e := findEvent(evs, "E2EKmsgWarning", "warning 001")
	if e == nil {
		t.Fatalf("no event for warning 001 among %d", len(evs))
	}
	if e.Type != corev1.EventTypeWarning || e.InvolvedObject.Kind != "Node" || e.InvolvedObject.UID != n.UID ||
		e.Source.Component != "nodehealthd" || e.ReportingController != "nodehealthd" || e.Namespace != "default" || e.Count != 1 {
		t.Errorf("event fields: type %s object %s/%s uid %s (node %s) source %q reporting %q ns %s count %d",
			e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.InvolvedObject.UID, n.UID, e.Source.Component, e.ReportingController, e.Namespace, e.Count)
	}
	// Delivered events leave the outbox of the state file.
	eventually(t, 3*time.Second, "outbox drained", func() (bool, string) {
		st := a.state()
		return st != nil && len(st.Outbox) == 0, "outbox not empty"
	})
	// A repeat after a restart counts the same event up: the events a
	// run sent are kept in the state file.
	a.stop(syscall.SIGTERM)
	a.startConnected("--kubeconfig", kubeconfig)
	kmsg("nhd-e2e-" + tok + " warn 001")
	// The repeat may fall within the coalescing window of the first
	// warning; then it is committed when the window ends.
	eventually(t, state.CoalesceWindow+10*time.Second, "repeat after restart counted up", func() (bool, string) {
		evs := nodeEvents(t, c, node)
		n, count := 0, int32(0)
		for i := range evs {
			if evs[i].Reason == "E2EKmsgWarning" && evs[i].Message == "warning 001" {
				n++
				count = evs[i].Count
			}
		}
		return n == 1 && count == 2, fmt.Sprintf("%d events for warning 001, count %d; want one with count 2", n, count)
	})

	all := append(append([]time.Duration(nil), condLat...), eventLat...)
	t.Logf("kmsg write → Node condition: p50 %v p99 %v max %v (n=%d)", percentile(condLat, .5), percentile(condLat, .99), percentile(condLat, 1), len(condLat))
	t.Logf("kmsg write → Event:          p50 %v p99 %v max %v (n=%d)", percentile(eventLat, .5), percentile(eventLat, .99), percentile(eventLat, 1), len(eventLat))
	t.Logf("finding → API, all samples:  p50 %v p99 %v (target p99 ≤ 1s); daemon peak RSS %.1f MiB", percentile(all, .5), percentile(all, .99), a.peak())
	if p := percentile(all, .99); p > time.Second {
		t.Errorf("p99 finding-to-API latency %v exceeds 1s", p)
	}
}

// TestKubeletWriterAndDaemonNeverClobber runs a kubelet-like writer with
// the same node identity, patching its own conditions every 50ms the way
// the kubelet does (GET, then a two-way strategic merge patch of
// nodes/status), while the daemon's conditions change. No version of the
// Node may lose either side's conditions or roll either back.
func TestKubeletWriterAndDaemonNeverClobber(t *testing.T) {
	c := cluster(t)
	const node = "node-coexist"
	createNode(t, c, node)
	a := newAgent(t, node, "")
	id := a.useNodeCert(c)
	rec := record(t, c, node)
	a.startConnected()

	kubelet, err := c.Client(id)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg     sync.WaitGroup
		posts  atomic.Int64
		kerr   atomic.Value
		kTypes = []string{"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			old, err := kubelet.Nodes().Get(ctx, node, metav1.GetOptions{})
			if err != nil {
				if ctx.Err() == nil {
					kerr.Store(err)
				}
				return
			}
			upd := old.DeepCopy()
			now := metav1.Now()
			seq := posts.Load() + 1
			for _, typ := range kTypes {
				c := corev1.NodeCondition{Type: corev1.NodeConditionType(typ), Status: corev1.ConditionFalse, Reason: "KubeletHasNo" + typ,
					Message: fmt.Sprintf("kubelet post #%06d", seq), LastHeartbeatTime: now, LastTransitionTime: now}
				if typ == "Ready" {
					c.Status, c.Reason = corev1.ConditionTrue, "KubeletReady"
				}
				replaced := false
				for i := range upd.Status.Conditions {
					if string(upd.Status.Conditions[i].Type) == typ {
						c.LastTransitionTime = upd.Status.Conditions[i].LastTransitionTime
						upd.Status.Conditions[i] = c
						replaced = true
					}
				}
				if !replaced {
					upd.Status.Conditions = append(upd.Status.Conditions, c)
				}
			}
			ob, _ := json.Marshal(old)
			nb, _ := json.Marshal(upd)
			patch, err := strategicpatch.CreateTwoWayMergePatch(ob, nb, corev1.Node{})
			if err != nil {
				kerr.Store(err)
				return
			}
			if _, err := kubelet.Nodes().PatchStatus(ctx, node, patch); err != nil {
				if ctx.Err() == nil {
					kerr.Store(err)
				}
				return
			}
			posts.Store(seq)
			time.Sleep(50 * time.Millisecond)
		}
	}()
	for i := range 20 {
		a.appendLine(fmt.Sprintf("FATAL part%02d", i))
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	if err, _ := kerr.Load().(error); err != nil {
		t.Fatalf("kubelet-like writer: %v", err)
	}
	last := fmt.Sprintf("kubelet post #%06d", posts.Load())
	rec.nodes.wait(t, time.Time{}, 5*time.Second, "final Node with both sides' last writes", func(n *corev1.Node) bool {
		r, cr := cond(n, "Ready"), cond(n, "ContainerRuntimeReady")
		return r != nil && r.Message == last && cr != nil && strings.Contains(cr.Message, "part19")
	})

	// Every version after both sides first appear keeps all eight types,
	// and neither side's progress ever goes backwards.
	both, kubeletSeq, ourParts := false, "", 0
	checked := 0
	for _, v := range rec.nodes.all() {
		n := v.obj
		have := map[string]*corev1.NodeCondition{}
		for i := range n.Status.Conditions {
			have[string(n.Status.Conditions[i].Type)] = &n.Status.Conditions[i]
		}
		all := true
		for _, typ := range append(append([]string(nil), kTypes...), ourTypes...) {
			all = all && have[typ] != nil
		}
		if !both {
			both = all
			if !both {
				continue
			}
		}
		checked++
		if !all {
			t.Fatalf("version %s lost conditions: %v", n.ResourceVersion, condTypes(n))
		}
		if m := have["Ready"].Message; m < kubeletSeq {
			t.Fatalf("version %s rolled the kubelet's Ready back from %q to %q", n.ResourceVersion, kubeletSeq, m)
		} else {
			kubeletSeq = m
		}
		if p := strings.Count(have["ContainerRuntimeReady"].Message, "part"); p < ourParts {
			t.Fatalf("version %s rolled our ContainerRuntimeReady back (%d → %d findings)", n.ResourceVersion, ourParts, p)
		} else {
			ourParts = p
		}
	}
	if checked < 30 {
		t.Fatalf("only %d Node versions with both writers seen; the test did not exercise concurrency", checked)
	}
	t.Logf("%d kubelet-like status patches and the daemon's writes: %d Node versions checked, none lost or rolled back a condition; daemon peak RSS %.1f MiB",
		posts.Load(), checked, a.peak())
}

// TestOtherNodesStatusIsForbidden: a node identity cannot write another
// Node's status (NodeRestriction), and a daemon pointed at the wrong Node
// says so in its log and in `nodehealthctl status`.
func TestOtherNodesStatusIsForbidden(t *testing.T) {
	c := cluster(t)
	const mine, other = "node-a3", "node-b3"
	createNode(t, c, mine)
	createNode(t, c, other)
	a := newAgent(t, mine, "")
	id := a.useNodeCert(c)

	cl, err := c.Client(id)
	if err != nil {
		t.Fatal(err)
	}
	patch := []byte(`{"status":{"conditions":[{"type":"KernelReady","status":"True","reason":"KernelIsReady"}]}}`)
	_, err = cl.Nodes().Patch(context.Background(), other, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if !apierrors.IsForbidden(err) {
		t.Fatalf("patching %s's status as %s: want 403 Forbidden, got %v", other, mine, err)
	}
	t.Logf("API server: %v", err)
	if _, err := cl.Nodes().Patch(context.Background(), mine, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatalf("patching its own status: %v", err)
	}

	a.start("--node-name", other)
	eventually(t, 15*time.Second, "daemon reports the refusal", func() (bool, string) {
		st := a.state()
		if st == nil || st.Cluster == nil {
			return false, "no cluster link"
		}
		l := st.Cluster
		return !l.Connected && l.Node == other && strings.Contains(l.LastError, "forbidden") &&
			strings.Contains(l.LastError, `not allowed to modify node "`+other+`"`), fmt.Sprintf("%+v", *l)
	})
	logs := a.logs.String()
	for _, want := range []string{"the client certificate is node " + mine + "'s: the API server will refuse writes to node " + other, "API server refused the write"} {
		if !strings.Contains(logs, want) {
			t.Errorf("daemon log lacks %q", want)
		}
	}
	line := statusClusterLine(t, a.stateDir)
	if !strings.Contains(line, "disconnected as node "+other) || !strings.Contains(line, "forbidden") {
		t.Errorf("nodehealthctl status cluster line: %q", line)
	}
	t.Logf("nodehealthctl status: %s", line)

	// Reading the other Node is refused too: retried with backoff and
	// said once at warn, however many times it is refused.
	reads := func() int {
		reqs, err := c.Requests("system:node:" + mine)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range reqs {
			if (r.Verb == "list" || r.Verb == "watch") && strings.HasPrefix(r.RequestURI, "/api/v1/nodes?") {
				n++
			}
		}
		return n
	}
	eventually(t, 30*time.Second, "the Node read refused three times", func() (bool, string) {
		n := reads()
		return n >= 3, fmt.Sprintf("%d list/watch requests", n)
	})
	if n := strings.Count(a.logs.String(), "API server refuses to let us read our own Node"); n != 1 {
		t.Errorf("the refused read logged %d times at warn, want once per episode (%d refused list/watch requests)", n, reads())
	}
	for _, typ := range ourTypes {
		if cond(getNode(t, c, other), typ) != nil {
			t.Errorf("%s got our %s condition", other, typ)
		}
	}
}

// TestOutageAndRestartLoseNothing stops kube-apiserver for 60 s while
// findings occur, kills the daemon with SIGKILL and restarts it during the
// outage (with more findings while it is down). When the API server comes
// back every condition and event must arrive, with lastTransitionTime the
// original detection time and repeated warnings counted in one event.
func TestOutageAndRestartLoseNothing(t *testing.T) {
	c := cluster(t)
	const node = "node-outage"
	a := enrol(t, c, node, "")
	a.startConnected()

	down := time.Now()
	if err := c.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.APIServerPID() == 0 {
			if err := c.StartAPIServer(); err != nil {
				t.Errorf("restart kube-apiserver: %v", err)
			}
		}
	})
	a.appendLine("FATAL disk1")
	a.appendLine("WARN blip")
	a.appendLine("WARN blip")
	a.appendLine("WARN other")
	var ltt time.Time
	// The second blip is a repeat within the coalescing window: it is
	// committed, with its count, when the window ends.
	eventually(t, state.CoalesceWindow+10*time.Second, "findings committed locally during the outage", func() (bool, string) {
		st := a.state()
		if st == nil {
			return false, "no state"
		}
		ltt = st.Conditions["ContainerRuntimeReady"].LastTransitionTime
		return st.Conditions["ContainerRuntimeReady"].Status == "False" && len(st.Outbox) == 3, fmt.Sprintf("outbox %d", len(st.Outbox))
	})
	// Detection never waits for the network: the state moved on although
	// every write failed.
	a.stop(syscall.SIGKILL)
	a.appendLine("WARN blip")
	a.appendLine("FATAL disk2")
	a.start()
	eventually(t, state.CoalesceWindow+10*time.Second, "restarted daemon caught up locally", func() (bool, string) {
		st := a.state()
		return st != nil && len(st.Outbox) == 4 && len(st.Active) == 2, "not yet"
	})
	if st := a.state(); !st.Conditions["ContainerRuntimeReady"].LastTransitionTime.Equal(ltt) {
		t.Fatalf("restart moved lastTransitionTime from %v to %v", ltt, st.Conditions["ContainerRuntimeReady"].LastTransitionTime)
	}
	if st := a.state(); st.Cluster == nil || st.Cluster.Connected || st.Cluster.PendingWrites < 4 {
		t.Fatalf("cluster link during the outage: %+v", st.Cluster)
	}
	time.Sleep(time.Until(down.Add(60 * time.Second)))
	// The state as it is before anything is delivered, to stage a lost
	// acknowledgement below.
	undelivered, err := os.ReadFile(filepath.Join(a.stateDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	t.Logf("kube-apiserver was down for %v", back.Sub(down).Round(time.Second))

	eventually(t, 60*time.Second, "conditions and events delivered after the outage", func() (bool, string) {
		n := getNode(t, c, node)
		cr := cond(n, "ContainerRuntimeReady")
		if cr == nil || cr.Status != corev1.ConditionFalse || !strings.Contains(cr.Message, "disk1") || !strings.Contains(cr.Message, "disk2") {
			return false, fmt.Sprintf("condition %+v", cr)
		}
		evs := reasonEvents(t, c, node, "E2ERuntimeHiccup")
		blip, other := findEvent(evs, "E2ERuntimeHiccup", "runtime hiccup: blip"), findEvent(evs, "E2ERuntimeHiccup", "runtime hiccup: other")
		return blip != nil && blip.Count == 3 && other != nil && other.Count == 1 && len(evs) == 2, fmt.Sprintf("%d events", len(evs))
	})
	t.Logf("everything delivered %v after the API server returned", time.Since(back).Round(100*time.Millisecond))
	cr := cond(getNode(t, c, node), "ContainerRuntimeReady")
	if !cr.LastTransitionTime.Time.Equal(ltt.Truncate(time.Second)) || cr.Reason != "E2ERuntimeBroken" {
		t.Errorf("condition after the outage: reason %s lastTransitionTime %v, want E2ERuntimeBroken and %v (first detection)", cr.Reason, cr.LastTransitionTime.Time, ltt)
	}
	if ltt.Before(down) || !ltt.Before(back) {
		t.Errorf("lastTransitionTime %v is not the detection time during the outage (%v to %v)", ltt, down, back)
	}
	eventually(t, 5*time.Second, "outbox drained and link connected", func() (bool, string) {
		st := a.state()
		return st != nil && len(st.Outbox) == 0 && st.Cluster != nil && st.Cluster.Connected && st.Cluster.PendingWrites == 0, fmt.Sprintf("%+v", st.Cluster)
	})

	// A crash that loses every acknowledgement after the API server took
	// the events: the next run finds the same records in its outbox. They
	// are the events already there, and must not become duplicates.
	a.stop(syscall.SIGTERM)
	write(t, filepath.Join(a.stateDir, "state.json"), string(undelivered))
	a.startConnected()
	eventually(t, 10*time.Second, "records sent again after the lost acknowledgement", func() (bool, string) {
		st := a.state()
		return st != nil && len(st.Outbox) == 0, "outbox not drained"
	})
	evs := reasonEvents(t, c, node, "E2ERuntimeHiccup")
	blip, other := findEvent(evs, "E2ERuntimeHiccup", "runtime hiccup: blip"), findEvent(evs, "E2ERuntimeHiccup", "runtime hiccup: other")
	if len(evs) != 2 || blip == nil || blip.Count != 3 || other == nil || other.Count != 1 {
		var got []string
		for _, e := range evs {
			got = append(got, fmt.Sprintf("%s %q ×%d", e.Name, e.Message, e.Count))
		}
		t.Errorf("after a lost acknowledgement: events %v, want the same two with counts 3 and 1", got)
	}
	t.Logf("daemon peak RSS %.1f MiB", a.peak())
}

// TestNodeRecreatedConditionsReasserted deletes and re-creates the Node
// (new UID, no conditions) and then overwrites one of our conditions: the
// daemon must write its conditions back, with their original transition
// times, without waiting for the heartbeat.
func TestNodeRecreatedConditionsReasserted(t *testing.T) {
	c := cluster(t)
	const node = "node-recreate"
	a := enrol(t, c, node, "")
	old := getNode(t, c, node)
	rec := record(t, c, node)
	a.startConnected()
	a.appendLine("FATAL nic0")
	rec.nodes.wait(t, time.Time{}, 5*time.Second, "condition False", func(n *corev1.Node) bool {
		cr := cond(n, "ContainerRuntimeReady")
		return cr != nil && cr.Status == corev1.ConditionFalse
	})
	ltt := cond(getNode(t, c, node), "ContainerRuntimeReady").LastTransitionTime

	if err := c.Admin.Nodes().Delete(context.Background(), node, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	// Taken before the create: the daemon's watch can re-assert the
	// conditions before createNode returns.
	recreated := time.Now()
	fresh := createNode(t, c, node)
	if fresh.UID == old.UID || len(fresh.Status.Conditions) != 0 {
		t.Fatalf("re-created Node: uid %s (old %s), %d conditions", fresh.UID, old.UID, len(fresh.Status.Conditions))
	}
	d := rec.nodes.wait(t, recreated, 5*time.Second, "conditions on the re-created Node", func(n *corev1.Node) bool {
		if n.UID != fresh.UID {
			return false
		}
		for _, typ := range ourTypes {
			if cond(n, typ) == nil {
				return false
			}
		}
		cr := cond(n, "ContainerRuntimeReady")
		return cr.Status == corev1.ConditionFalse && cr.LastTransitionTime.Equal(&ltt)
	})
	t.Logf("conditions re-asserted %v after the Node was re-created", d.Round(time.Millisecond))

	at := a.appendLine("WARN after-recreate")
	rec.events.wait(t, at, 3*time.Second, "event about the new Node", func(e *corev1.Event) bool {
		return e.Message == "runtime hiccup: after-recreate" && e.InvolvedObject.UID == fresh.UID
	})

	// Someone else overwrites our condition (as a full-list writer would).
	overwrite := []byte(`{"status":{"conditions":[{"type":"KernelReady","status":"False","reason":"SomeoneElse","message":"overwritten"}]}}`)
	if _, err := c.Admin.Nodes().Patch(context.Background(), node, types.StrategicMergePatchType, overwrite, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	over := time.Now()
	d = rec.nodes.wait(t, over, 5*time.Second, "overwritten condition restored", func(n *corev1.Node) bool {
		k := cond(n, "KernelReady")
		return k != nil && k.Status == corev1.ConditionTrue && k.Reason == "KernelIsReady"
	})
	t.Logf("overwritten KernelReady restored %v after the overwrite", d.Round(time.Millisecond))
	if !strings.Contains(a.logs.String(), "Node re-registered with a new UID") && !strings.Contains(a.logs.String(), "Node registered; writing conditions") {
		t.Errorf("daemon log does not mention the re-registration")
	}
}

// TestRotatedClientCertificateIsUsed rotates the kubelet client
// certificate the way the kubelet does (new dated file, the
// kubelet-client-current.pem symlink re-pointed). The new certificate
// carries an extra organisation, which the API server turns into a group
// that its audit log records for each request: the server side shows
// which certificate authenticated every later write.
func TestRotatedClientCertificateIsUsed(t *testing.T) {
	c := cluster(t)
	const node = "node-rotate"
	const rotatedGroup = "nodehealthd-e2e:rotated"
	a := enrol(t, c, node, "")
	// The files are checked every 30 s by default.
	a.writeConfig("cluster: {fileCheckInterval: 2s}\n")
	rec := record(t, c, node)
	a.startConnected()
	a.appendLine("FATAL before")
	rec.nodes.wait(t, time.Time{}, 5*time.Second, "write with the first certificate", func(n *corev1.Node) bool {
		cr := cond(n, "ContainerRuntimeReady")
		return cr != nil && strings.Contains(cr.Message, "before")
	})

	oldTarget, _ := os.Readlink(filepath.Join(a.root, a.certDir, "kubelet-client-current.pem"))
	rotated, err := c.CA.ClientCert("system:node:"+node, "system:nodes", rotatedGroup)
	if err != nil {
		t.Fatal(err)
	}
	a.installCert(rotated)
	// The kubelet removes old certificates eventually; nothing may still
	// need the old file.
	if err := os.Remove(filepath.Join(a.root, a.certDir, oldTarget)); err != nil {
		t.Fatal(err)
	}
	rotatedAt := time.Now()
	eventually(t, 15*time.Second, "daemon noticed the rotation", func() (bool, string) {
		return strings.Contains(a.logs.String(), "client certificate changed on disk"), "not logged"
	})
	after := time.Now()
	a.appendLine("FATAL after")
	rec.nodes.wait(t, after, 5*time.Second, "write after the rotation", func(n *corev1.Node) bool {
		cr := cond(n, "ContainerRuntimeReady")
		return cr != nil && strings.Contains(cr.Message, "after")
	})
	reqs, err := c.Requests("system:node:" + node)
	if err != nil {
		t.Fatal(err)
	}
	var before, switched, oldAfter, newWrites int
	var firstNew time.Time
	for _, r := range reqs {
		rot := false
		for _, g := range r.User.Groups {
			rot = rot || g == rotatedGroup
		}
		switch {
		case r.RequestReceived.Before(rotatedAt):
			before++
			if rot {
				t.Errorf("request before the rotation authenticated with the new certificate: %s %s", r.Verb, r.RequestURI)
			}
		case rot:
			switched++
			if firstNew.IsZero() {
				firstNew = r.RequestReceived
			}
			if !r.RequestReceived.Before(after) && r.Verb == "patch" && r.ObjectRef != nil && r.ObjectRef.Subresource == "status" {
				newWrites++
			}
		case !firstNew.IsZero():
			t.Errorf("request at %v still used the old certificate after the new one was in use: %s %s", r.RequestReceived, r.Verb, r.RequestURI)
		default:
			oldAfter++
		}
	}
	if before == 0 || switched == 0 || newWrites == 0 {
		t.Fatalf("audit log: %d requests before the rotation, %d with the new certificate (%d status patches after the switch)", before, switched, newWrites)
	}
	t.Logf("audit log: %d requests with the old certificate before the rotation, %d in the %v before the daemon switched; then all %d with the rotated one (group %s), including the status patch of the later finding",
		before, oldAfter, firstNew.Sub(rotatedAt).Round(time.Millisecond), switched, rotatedGroup)
}

// TestExecPluginCredentials uses an AL2023-style kubeconfig at
// /var/lib/kubelet/kubeconfig whose user is an exec credential plugin (a
// stand-in for `aws eks get-token`) returning a token the API server maps
// to system:node:node-exec; the node name comes from --hostname-override
// in /etc/eks/kubelet/environment. All paths are host paths under --root.
func TestExecPluginCredentials(t *testing.T) {
	c := cluster(t)
	const node = "node-exec"
	n := createNode(t, c, node)
	a := newAgent(t, node, "")
	marker := filepath.Join(a.root, "tmp/credential-plugin-ran")
	write(t, filepath.Join(a.root, "usr/local/bin/e2e-get-token"), `#!/bin/sh
echo run >> "$(dirname "$0")/../../../tmp/credential-plugin-ran"
cat <<EOF
{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"`+execToken+`"}}
EOF
`)
	if err := os.Chmod(filepath.Join(a.root, "usr/local/bin/e2e-get-token"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(a.root, "tmp/.keep"), "")
	if err := c.WriteKubeconfig(filepath.Join(a.root, "var/lib/kubelet/kubeconfig"), "/etc/kubernetes/pki/ca.crt",
		filepath.Join(a.root, "etc/kubernetes/pki/ca.crt"), kubetest.User{ExecCommand: "/usr/local/bin/e2e-get-token", ExecArgs: []string{"--cluster-name", "e2e"}}); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(a.root, "etc/eks/kubelet/environment"),
		`NODEADM_KUBELET_ARGS="--node-ip=10.0.0.7 --hostname-override=node-exec --cloud-provider=external --kubeconfig=/var/lib/kubelet/kubeconfig"`+"\n")
	rec := record(t, c, node)
	a.startConnected()
	at := a.appendLine("FATAL via-exec")
	rec.nodes.wait(t, at, 2*time.Second, "condition written with exec-plugin credentials", func(n *corev1.Node) bool {
		cr := cond(n, "ContainerRuntimeReady")
		return cr != nil && strings.Contains(cr.Message, "via-exec")
	})
	at = a.appendLine("WARN via-exec")
	rec.events.wait(t, at, 2*time.Second, "event sent with exec-plugin credentials", func(e *corev1.Event) bool {
		return e.Message == "runtime hiccup: via-exec" && e.InvolvedObject.UID == n.UID
	})
	logs := a.logs.String()
	for _, want := range []string{"credentials=\"exec plugin " + filepath.Join(a.root, "usr/local/bin/e2e-get-token") + "\"", "node_name_from=\"/etc/eks/kubelet/environment --hostname-override\""} {
		if !strings.Contains(logs, want) {
			t.Errorf("daemon log lacks %s", want)
		}
	}
	if b, err := os.ReadFile(marker); err != nil || len(b) == 0 {
		t.Errorf("the credential plugin under --root did not run: %v", err)
	}
	reqs, err := c.Requests("system:node:" + node)
	if err != nil || len(reqs) == 0 {
		t.Fatalf("no requests as system:node:%s in the audit log (%v)", node, err)
	}
	t.Logf("%d requests authenticated as system:node:%s by the plugin's token", len(reqs), node)
}

// TestHungExecPluginIsKilledAndReported: an exec credential plugin that
// hangs in a child process, printing secrets to stderr, is killed with its
// child after cluster.execTimeout; the daemon says it cannot
// authenticate in nodehealthctl status and /readyz, logs the failure once
// and without the secrets, and publishes once the plugin answers.
func TestHungExecPluginIsKilledAndReported(t *testing.T) {
	c := cluster(t)
	const node = "node-exec-hung"
	createNode(t, c, node)
	a := newAgent(t, node, "")
	pidFile := filepath.Join(a.root, "tmp/plugin-pids")
	fixed := filepath.Join(a.root, "tmp/plugin-fixed")
	write(t, filepath.Join(a.root, "tmp/.keep"), "")
	write(t, filepath.Join(a.root, "usr/local/bin/e2e-get-token"), `#!/bin/sh
if [ -e `+fixed+` ]; then
	echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"`+hungExecToken+`"}}'
	exit 0
fi
echo $$ >> `+pidFile+`
echo "debug: token=CANARY123 for AKIAIOSFODNN7CANARY1" >&2
sleep 100 &
echo $! >> `+pidFile+`
wait
`)
	if err := os.Chmod(filepath.Join(a.root, "usr/local/bin/e2e-get-token"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range pluginPIDs(pidFile) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if err := c.WriteKubeconfig(filepath.Join(a.root, "var/lib/kubelet/kubeconfig"), "/etc/kubernetes/pki/ca.crt",
		filepath.Join(a.root, "etc/kubernetes/pki/ca.crt"), kubetest.User{ExecCommand: "/usr/local/bin/e2e-get-token"}); err != nil {
		t.Fatal(err)
	}
	addr := daemontest.FreeAddr(t)
	readyz := func() (int, string) {
		code, body, err := daemontest.Get(addr, "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		return code, body
	}
	a.writeConfig("cluster: {execTimeout: 1s}\n")
	a.start("--node-name", node, "--metrics-address", addr)

	eventually(t, 30*time.Second, "the link says the publisher cannot authenticate", func() (bool, string) {
		st := a.state()
		if st == nil || st.Cluster == nil {
			return false, "no cluster link"
		}
		return st.Cluster.Unauthenticated && strings.Contains(st.Cluster.LastError, "timed out after 1s"), fmt.Sprintf("%+v", *st.Cluster)
	})
	if line := statusClusterLine(t, a.stateDir); !strings.Contains(line, "cannot authenticate as node "+node) {
		t.Errorf("nodehealthctl status cluster line: %q", line)
	}
	eventually(t, 10*time.Second, "/readyz says the publisher cannot authenticate", func() (bool, string) {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "cannot authenticate"), fmt.Sprintf("%d %s", code, body)
	})
	// The first run's plugin and its sleeping child are killed.
	eventually(t, 20*time.Second, "the plugin run again and its first run gone", func() (bool, string) {
		pids := pluginPIDs(pidFile)
		if len(pids) < 4 {
			return false, fmt.Sprintf("pids %v", pids)
		}
		for _, pid := range pids[:2] {
			if err := syscall.Kill(pid, 0); err == nil && !zombie(pid) {
				return false, fmt.Sprintf("pid %d of the first run still runs", pid)
			}
		}
		return true, ""
	})
	logs := a.logs.String()
	for _, secret := range []string{"CANARY123", "AKIAIOSFODNN7CANARY1"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the plugin's secret %s reached the daemon's output", secret)
		}
	}
	if n := strings.Count(logs, "level=ERROR msg=\"exec credential plugin failed"); n != 1 {
		t.Errorf("plugin failure logged %d times at error, want once", n)
	}

	write(t, fixed, "")
	at := time.Now()
	a.connected(60 * time.Second)
	t.Logf("connected %v after the plugin was fixed", time.Since(at).Round(time.Millisecond))
	eventually(t, 10*time.Second, "/readyz ok once the plugin answers", func() (bool, string) {
		code, body := readyz()
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
	if !strings.Contains(a.logs.String(), "exec credential plugin works again") {
		t.Error("recovery not logged")
	}
}

func pluginPIDs(file string) []int {
	b, _ := os.ReadFile(file)
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// zombie reports whether pid has exited and waits for its reaper.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// TestPublishesWhileKubeletIsDown: there is no kubelet process on this
// machine at all and the Node never had a kubelet condition (no Ready, as
// when the kubelet is down), yet the daemon publishes with the kubelet's
// credentials: a kmsg finding present at start reaches the Node and the
// events within 2 s of its detection.
func TestPublishesWhileKubeletIsDown(t *testing.T) {
	c := cluster(t)
	if pids := processes("kubelet"); len(pids) > 0 {
		t.Fatalf("a kubelet is running (pids %v); this test needs none", pids)
	}
	const node = "node-nokubelet"
	a := enrol(t, c, node, "6,100,5000000,-;e2e-noise boot\n3,101,6000000,-;e2e-oops boot\n")
	rec := record(t, c, node)
	started := time.Now()
	a.start()
	var st *state.State
	eventually(t, 10*time.Second, "kmsg findings detected", func() (bool, string) {
		st = a.state()
		return st != nil && len(st.Active) == 1 && len(st.Recent) == 2, "not yet"
	})
	detected := st.Active[0].Detected
	rec.nodes.wait(t, time.Time{}, 10*time.Second, "KernelReady False", func(n *corev1.Node) bool {
		k := cond(n, "KernelReady")
		return k != nil && k.Status == corev1.ConditionFalse && k.Reason == "E2EKernelOops"
	})
	condAt, _ := rec.nodes.first(time.Time{}, func(n *corev1.Node) bool {
		k := cond(n, "KernelReady")
		return k != nil && k.Status == corev1.ConditionFalse
	})
	rec.events.wait(t, time.Time{}, 10*time.Second, "E2EKernelNoise event", func(e *corev1.Event) bool { return e.Reason == "E2EKernelNoise" })
	eventAt, _ := rec.events.first(time.Time{}, func(e *corev1.Event) bool { return e.Reason == "E2EKernelNoise" })
	// The kmsg file's records carry boot-relative times; measured from the
	// daemon's start, which is before detection, the bound is conservative.
	if d := condAt.Sub(started); d > 2*time.Second {
		t.Errorf("condition reached the API %v after the daemon started", d)
	}
	if d := eventAt.Sub(started); d > 2*time.Second {
		t.Errorf("event reached the API %v after the daemon started", d)
	}
	n := getNode(t, c, node)
	if r := cond(n, "Ready"); r != nil {
		t.Errorf("the Node has a Ready condition (%s): something posted kubelet status", r.Status)
	}
	t.Logf("no kubelet process, no Ready condition on %s; kmsg findings (record time %v) → condition %v, event %v after the daemon started; conditions: %v",
		node, detected.Format(time.RFC3339), condAt.Sub(started).Round(time.Millisecond), eventAt.Sub(started).Round(time.Millisecond), condTypes(n))
}

// processes returns the PIDs whose command name is name.
func processes(name string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm")); err == nil && strings.TrimSpace(string(b)) == name {
			out = append(out, pid)
		}
	}
	return out
}

// TestHealthyNodeRequestsPerHour counts, in the API server's audit log,
// every request a healthy node's daemon makes with a 2 s heartbeat, and
// extrapolates to the default 5 min heartbeat.
func TestHealthyNodeRequestsPerHour(t *testing.T) {
	c := cluster(t)
	const node = "node-idle"
	a := enrol(t, c, node, "")
	// writeConfig switches the probes off: this machine's clock is not
	// NTP-synchronised, which the clock probe reports as a Warning.
	const hb = 2 * time.Second
	a.writeConfig("cluster: {heartbeat: " + hb.String() + "}\n")
	a.startConnected()
	connectedAt := time.Now()
	time.Sleep(3 * time.Second)
	from := time.Now()
	seen := len(a.state().Recent)
	const window = 30 * time.Second
	time.Sleep(window)
	to := time.Now()
	if st := a.state(); len(st.Recent) != seen || len(st.Active) != 0 {
		t.Fatalf("the node was not healthy during the measurement: findings %v", st.Recent[seen:])
	}
	reqs, err := c.Requests("system:node:" + node)
	if err != nil {
		t.Fatal(err)
	}
	var startup, inWindow, patches, nodeDiag []string
	var patchTimes []time.Time
	for _, r := range reqs {
		desc := fmt.Sprintf("%s %s", r.Verb, r.RequestURI)
		if r.ObjectRef != nil && r.ObjectRef.Resource == "nodediagnostics" {
			// Requests from the cluster (internal/nodediag): this cluster
			// has neither the CRD nor the RBAC, asked about at start and
			// then hourly.
			nodeDiag = append(nodeDiag, desc)
			continue
		}
		switch {
		case r.RequestReceived.Before(connectedAt):
			startup = append(startup, desc)
		case r.RequestReceived.Before(from):
		case r.RequestReceived.Before(to):
			inWindow = append(inWindow, desc)
			if r.Verb == "patch" && r.ObjectRef != nil && r.ObjectRef.Resource == "nodes" && r.ObjectRef.Subresource == "status" {
				patches = append(patches, desc)
				patchTimes = append(patchTimes, r.RequestReceived)
			}
		}
		if !strings.HasPrefix(r.UserAgent, "nodehealthd/") {
			t.Errorf("request with user agent %q", r.UserAgent)
		}
	}
	if len(patches) < 2 || len(inWindow) != len(patches) {
		t.Fatalf("steady state should be heartbeat patches only; in %v: %d requests, %d status patches: %v", window, len(inWindow), len(patches), inWindow)
	}
	perHeartbeat := float64(len(inWindow)) / float64(len(patches))
	// From the first patch to the last, not the window over the count:
	// where the window's edges fall between heartbeats moves that by a
	// whole heartbeat either way.
	slices.SortFunc(patchTimes, time.Time.Compare)
	meanInterval := patchTimes[len(patchTimes)-1].Sub(patchTimes[0]).Seconds() / float64(len(patchTimes)-1)
	if meanInterval < hb.Seconds() || meanInterval > hb.Seconds()*1.25 {
		t.Errorf("mean heartbeat interval %.2fs, want within [1, 1.2] × %v", meanInterval, hb)
	}
	// At the default heartbeat (5 min, jittered +0..20%, mean 5.5 min) plus
	// the watch renewal (a random 60-120 min timeout, mean 90 min).
	perHour := perHeartbeat*3600/(300*1.1) + 60.0/90
	t.Logf("start-up: %d requests %v", len(startup), startup)
	t.Logf("steady state over %v: %d requests, all PATCH nodes/%s/status (%.2f per heartbeat, mean interval %.2fs)", window, len(inWindow), node, perHeartbeat, meanInterval)
	t.Logf("extrapolated to the default 5m heartbeat: %.1f requests/hour (target ≤ 12); daemon peak RSS %.1f MiB", perHour, a.peak())
	if perHour > 12 {
		t.Errorf("%.1f requests/hour exceeds 12", perHour)
	}
	if len(startup) > 4 {
		t.Errorf("start-up made %d requests: %v", len(startup), startup)
	}
	// NodeDiagnostic: one list at start; refused, the next is an hour
	// later (docs/cluster.md counts 1/hour, 0.7 once it is served).
	if len(nodeDiag) != 1 {
		t.Errorf("NodeDiagnostic requests %v: want the one list at start", nodeDiag)
	}
}

// TestWriteBudgetAndEventRateLimit floods the daemon with 130 distinct
// warnings at once under the default budgets: the node's writes in the
// first seconds stay within the write budget's burst (20), each reason
// sends at most its burst (5), and what a reason cannot hold (20 distinct
// waiting) is dropped, counted and logged, never silently.
func TestWriteBudgetAndEventRateLimit(t *testing.T) {
	c := cluster(t)
	const node = "node-burst"
	a := enrol(t, c, node, "")
	a.startConnected()
	before, err := c.Requests("system:node:" + node)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for r := range 10 {
		for n := range 10 {
			lines = append(lines, fmt.Sprintf("BURST %d %d", r, n))
		}
	}
	for i := range 30 {
		lines = append(lines, fmt.Sprintf("WARN flood-%02d", i))
	}
	f, err := os.OpenFile(a.appLog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	const settleFor = 8 * time.Second
	time.Sleep(settleFor)
	reqs, err := c.Requests("system:node:" + node)
	if err != nil {
		t.Fatal(err)
	}
	writes := 0
	for _, r := range reqs[len(before):] {
		if r.Verb == "create" || r.Verb == "patch" || r.Verb == "update" {
			writes++
		}
	}
	elapsed := time.Since(start)
	budget := 20 + int(12*elapsed.Minutes()+1)
	if writes > budget || writes < 15 {
		t.Errorf("%d writes in %v; the budget allows %d (burst 20 + 12/min) and should have been used", writes, elapsed.Round(time.Millisecond), budget)
	}
	perReason := map[string]int{}
	for _, e := range nodeEvents(t, c, node) {
		perReason[e.Reason]++
	}
	for r, n := range perReason {
		if n > 5 {
			t.Errorf("reason %s sent %d events at once; its burst is 5", r, n)
		}
	}
	st := a.state()
	if st.Cluster == nil || st.Cluster.EventsDropped != 10 {
		t.Fatalf("cluster link: %+v, want 10 dropped (30 distinct E2ERuntimeHiccup findings, 20 may wait)", st.Cluster)
	}
	if st.Cluster.PendingWrites == 0 {
		t.Errorf("no pending writes reported while events wait for budget")
	}
	if !strings.Contains(a.logs.String(), "events dropped by the per-reason rate limit") {
		t.Errorf("drops not logged")
	}
	t.Logf("130 warnings at once: %d writes in %v (budget %d), events per reason %v, %d dropped and %d pending in the state",
		writes, elapsed.Round(time.Millisecond), budget, perReason, st.Cluster.EventsDropped, st.Cluster.PendingWrites)
}

// TestUnmonitoredConditionRemoved: a condition type switched off in
// config.yaml disappears from the Node, as does a stale
// AcceleratedHardwareReady on a node without accelerators; other types
// stay.
func TestUnmonitoredConditionRemoved(t *testing.T) {
	c := cluster(t)
	const node = "node-disable"
	a := enrol(t, c, node, "")
	stale := []byte(`{"status":{"conditions":[{"type":"AcceleratedHardwareReady","status":"False","reason":"NvidiaXID79Error","message":"left by a previous agent"},{"type":"Ready","status":"True","reason":"KubeletReady"}]}}`)
	if _, err := c.Admin.Nodes().Patch(context.Background(), node, types.StrategicMergePatchType, stale, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	rec := record(t, c, node)
	a.startConnected()
	rec.nodes.wait(t, time.Time{}, 5*time.Second, "our four types, no stale AcceleratedHardwareReady", func(n *corev1.Node) bool {
		for _, typ := range ourTypes {
			if cond(n, typ) == nil {
				return false
			}
		}
		return cond(n, "AcceleratedHardwareReady") == nil && cond(n, "Ready") != nil
	})
	at := time.Now()
	a.writeConfig("conditions:\n  StorageReady: {enabled: false}\n")
	d := rec.nodes.wait(t, at, 5*time.Second, "StorageReady removed", func(n *corev1.Node) bool {
		return cond(n, "StorageReady") == nil && cond(n, "KernelReady") != nil && cond(n, "Ready") != nil
	})
	t.Logf("StorageReady removed %v after it was switched off; conditions now %v", d.Round(time.Millisecond), condTypes(getNode(t, c, node)))
}

// TestKubeconfigAppearsLater: before the kubelet has credentials the daemon
// runs in local mode (findings recorded, nothing lost); once the kubeconfig
// appears it publishes what it found meanwhile, without a restart.
func TestKubeconfigAppearsLater(t *testing.T) {
	c := cluster(t)
	const node = "node-late"
	n := createNode(t, c, node)
	a := newAgent(t, node, "")
	rec := record(t, c, node)
	a.start()
	a.following(10 * time.Second)
	a.appendLine("FATAL early")
	a.appendLine("WARN early")
	eventually(t, 10*time.Second, "findings recorded in local mode", func() (bool, string) {
		st := a.state()
		return st != nil && len(st.Active) == 1 && len(st.Outbox) == 1 && st.Cluster == nil, "not yet"
	})
	out, err := exec.Command(filepath.Join(testbin.Build(t), "nodehealthctl"), "status", "--state-dir", a.stateDir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Cluster: local mode") {
		t.Fatalf("nodehealthctl status before the kubeconfig exists: %v\n%s", err, out)
	}
	if !strings.Contains(a.logs.String(), "no kubelet kubeconfig yet") {
		t.Errorf("daemon does not say it is waiting for the kubeconfig")
	}
	a.useNodeCert(c)
	appeared := time.Now()
	rec.nodes.wait(t, appeared, 15*time.Second, "condition published once the kubeconfig appeared", func(n *corev1.Node) bool {
		cr := cond(n, "ContainerRuntimeReady")
		return cr != nil && strings.Contains(cr.Message, "early")
	})
	d := rec.events.wait(t, appeared, 15*time.Second, "event published once the kubeconfig appeared", func(e *corev1.Event) bool {
		return e.Message == "runtime hiccup: early" && e.InvolvedObject.UID == n.UID
	})
	a.connected(5 * time.Second)
	line := statusClusterLine(t, a.stateDir)
	if !strings.Contains(line, "connected as node "+node) || !strings.Contains(line, "0 pending writes") {
		t.Errorf("nodehealthctl status: %q", line)
	}
	t.Logf("published %v after the kubeconfig appeared (discovery polls every 10s); status: %s", d.Round(time.Millisecond), line)
}

// TestReadOnlyStateDirStillPublishes: a node whose /var went read-only is
// exactly one whose health must reach the cluster. With its state directory
// read-only from the start the daemon still publishes the kmsg findings,
// and the read-only filesystem itself (StorageReady False,
// FilesystemReadOnly) although it cannot write its own file.
func TestReadOnlyStateDirStillPublishes(t *testing.T) {
	c := cluster(t)
	const node = "node-rostate"
	a := enrol(t, c, node, "6,100,5000000,-;e2e-noise boot\n3,101,6000000,-;e2e-oops boot\n")
	if err := os.MkdirAll(a.stateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "--bind", "-o", "ro", a.stateDir, a.stateDir).CombinedOutput(); err != nil {
		t.Skipf("cannot bind-mount the state directory read-only (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = syscall.Unmount(a.stateDir, syscall.MNT_DETACH) })
	rec := record(t, c, node)
	a.start()
	rec.nodes.wait(t, time.Time{}, 20*time.Second, "KernelReady False and StorageReady False/FilesystemReadOnly", func(n *corev1.Node) bool {
		k, s := cond(n, "KernelReady"), cond(n, "StorageReady")
		return k != nil && k.Status == corev1.ConditionFalse && k.Reason == "E2EKernelOops" &&
			s != nil && s.Status == corev1.ConditionFalse && s.Reason == "FilesystemReadOnly" && strings.Contains(s.Message, a.stateDir)
	})
	rec.events.wait(t, time.Time{}, 20*time.Second, "E2EKernelNoise event", func(e *corev1.Event) bool { return e.Reason == "E2EKernelNoise" })
	if _, err := os.Stat(filepath.Join(a.stateDir, state.FileName)); err == nil {
		t.Fatal("a state file exists in a read-only directory: the test did not test what it says")
	}
	if err := syscall.Unmount(a.stateDir, syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	rec.nodes.wait(t, time.Time{}, 90*time.Second, "StorageReady True once the state can be written", func(n *corev1.Node) bool {
		s := cond(n, "StorageReady")
		return s != nil && s.Status == corev1.ConditionTrue
	})
	eventually(t, 10*time.Second, "the state file to hold the kmsg finding", func() (bool, string) {
		st := a.state()
		return st != nil && len(st.Active) == 1 && st.Active[0].Reason == "E2EKernelOops", "not yet"
	})
}

// TestMetricsCountAPIWrites scrapes /metrics of a daemon publishing to a
// real API server: the writes it made and the event it emitted are
// counted (the publisher reports to the metrics, not only to the log).
func TestMetricsCountAPIWrites(t *testing.T) {
	c := cluster(t)
	const node = "node-metrics"
	a := enrol(t, c, node, "")
	a.startConnected("--metrics-address", "127.0.0.1:0")
	addr := a.d.MetricsAddr(t, 0)
	a.appendLine("WARN metrics")
	sample := func(name string) float64 {
		m, err := daemontest.Scrape(addr)
		if err != nil {
			t.Fatal(err)
		}
		return m[name]
	}
	eventually(t, 10*time.Second, "writes and the event counted", func() (bool, string) {
		st, ev, em := sample(`nodehealthd_api_writes_total{kind="node_status"}`), sample(`nodehealthd_api_writes_total{kind="event"}`), sample("nodehealthd_events_emitted_total")
		return st > 0 && ev > 0 && em > 0, fmt.Sprintf("node_status %v, event %v, emitted %v", st, ev, em)
	})
	if n := sample(`nodehealthd_api_write_errors_total{kind="node_status"}`); n != 0 {
		t.Errorf("%v node status write errors against a healthy API server", n)
	}
}
