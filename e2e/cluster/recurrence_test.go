//go:build linux

package cluster

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodehealthd/nodehealthd/e2e/internal/testbin"
)

// TestRecurrenceAfterReboot is issue 14's acceptance for recurrence: a
// fixture root whose boot ID changes between daemon runs. An XID 79 in
// boot A; boot B starts clean (the finding clears); the same line in boot
// B makes the condition message name the recurrence and sends a
// RecurredAfterReboot event, and a restart within boot B sends no second
// one; in boot C the configured escalation makes the condition's reason
// the escalated one.
func TestRecurrenceAfterReboot(t *testing.T) {
	c := cluster(t)
	const node = "node-recur"
	const xid = "3,101,6000000,-;NVRM: Xid (PCI:0000:3b:00): 79, pid=0, GPU has fallen off the bus.\n"
	a := enrol(t, c, node, xid)
	// An NVIDIA node (the driver column EKS's agent reads), so that
	// AcceleratedHardwareReady is monitored; NVML is not there to ask.
	write(t, filepath.Join(a.root, "proc/bus/pci/devices"), "3b00\t10de2330\t0\tnvidia\n")
	a.writeConfig("nvml: {enabled: false}\nreasons:\n  NvidiaXID79Error:\n    escalate: {afterReboots: 2, within: 24h, reason: NvidiaDeviceCountMismatch}\n")
	rec := record(t, c, node)
	gpu := func(n *corev1.Node) *corev1.NodeCondition { return cond(n, "AcceleratedHardwareReady") }
	reboot := func(boot string, kmsg string, ago time.Duration) {
		write(t, filepath.Join(a.root, "proc/sys/kernel/random/boot_id"), boot+"\n")
		write(t, filepath.Join(a.root, "proc/stat"), fmt.Sprintf("cpu  1 2 3 4\nbtime %d\n", time.Now().Add(-ago).Unix()))
		write(t, filepath.Join(a.root, "dev/kmsg"), kmsg)
	}
	bootA := "e2e0000a-0000-4000-8000-" + randomHex(6)
	bootB := "e2e0000b-0000-4000-8000-" + randomHex(6)
	bootC := "e2e0000c-0000-4000-8000-" + randomHex(6)

	reboot(bootA, xid, 3*time.Hour)
	a.startConnected()
	rec.nodes.wait(t, time.Time{}, 10*time.Second, "boot A: XID 79 on the Node", func(n *corev1.Node) bool {
		g := gpu(n)
		return g != nil && g.Status == corev1.ConditionFalse && g.Reason == "NvidiaXID79Error" && !strings.Contains(g.Message, "recurred")
	})
	a.stop(syscall.SIGTERM)

	// Boot B, an empty ring: the reboot clears the finding.
	reboot(bootB, "", 2*time.Hour)
	since := time.Now()
	a.start()
	rec.nodes.wait(t, since, 10*time.Second, "boot B: the reboot clears the finding", func(n *corev1.Node) bool {
		g := gpu(n)
		return g != nil && g.Status == corev1.ConditionTrue
	})
	a.stop(syscall.SIGTERM)
	// The same line in boot B's ring (a restart reads it).
	reboot(bootB, xid, 2*time.Hour)
	since = time.Now()
	a.start()
	const recurred = "NvidiaXID79Error: detected XID-79 on the instance, review kernel logs for additional information. (recurred after 1 reboot in 24h)"
	rec.nodes.wait(t, since, 10*time.Second, "boot B: the recurrence on the Node", func(n *corev1.Node) bool {
		g := gpu(n)
		return g != nil && g.Status == corev1.ConditionFalse && g.Reason == "NvidiaXID79Error" && g.Message == recurred
	})
	const event = "NvidiaXID79Error (0000:3b:00/79) recurred after 1 reboot in 24h"
	rec.events.wait(t, since, 10*time.Second, "RecurredAfterReboot event", func(e *corev1.Event) bool {
		return e.Reason == "RecurredAfterReboot" && e.Type == corev1.EventTypeWarning && e.Message == event
	})
	out, err := exec.Command(filepath.Join(testbin.Build(t), "nodehealthctl"), "status", "--state-dir", a.stateDir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "RECURRING: recurred after 1 reboot in 24h") || !strings.Contains(string(out), "NvidiaXID79Error: 2 boots") {
		t.Errorf("nodehealthctl status (err %v):\n%s", err, out)
	}
	ltt := gpu(getNode(t, c, node)).LastTransitionTime
	a.stop(syscall.SIGTERM)

	// A restart within boot B is no reboot: nothing is sent again, the
	// condition stays as it was.
	a.startConnected()
	if st := a.state(); st == nil || len(st.Active) != 1 || st.Active[0].Recurrence == nil || st.Active[0].Recurrence.Reboots != 1 {
		t.Fatalf("after a restart in boot B: %+v", st)
	}
	evs := reasonEvents(t, c, node, "RecurredAfterReboot")
	if len(evs) != 1 || evs[0].Count > 1 {
		t.Errorf("after a restart in boot B: RecurredAfterReboot events %+v", evs)
	}
	if g := gpu(getNode(t, c, node)); g.Message != recurred || !g.LastTransitionTime.Equal(&ltt) {
		t.Errorf("after a restart in boot B: %+v (lastTransitionTime was %v)", g, ltt)
	}
	a.stop(syscall.SIGTERM)

	// Boot C: the second reboot that did not help escalates.
	reboot(bootC, xid, time.Hour)
	since = time.Now()
	a.start()
	rec.nodes.wait(t, since, 10*time.Second, "boot C: the escalated reason on the Node", func(n *corev1.Node) bool {
		g := gpu(n)
		return g != nil && g.Status == corev1.ConditionFalse && g.Reason == "NvidiaDeviceCountMismatch" &&
			strings.Contains(g.Message, "(NvidiaXID79Error recurred after 2 reboots in 24h, escalated)")
	})
	rec.events.wait(t, since, 10*time.Second, "RecurredAfterReboot event of the escalation", func(e *corev1.Event) bool {
		return e.Reason == "RecurredAfterReboot" &&
			e.Message == "NvidiaXID79Error (0000:3b:00/79) recurred after 2 reboots in 24h; reported as NvidiaDeviceCountMismatch from now on"
	})
	t.Logf("conditions: %v", condTypes(getNode(t, c, node)))
}
