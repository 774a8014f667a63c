//go:build linux

package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestNPDPluginOwnsCustomCondition: an NPD custom-plugin-monitor file runs
// natively, as the default plugin user: exit 1 with a message makes the
// custom condition False with that message, exit 0 True again; a plugin
// hanging past its timeout is killed and reported unknown, leaving the
// condition as it was; deleting the plugin and its type from the config
// removes the condition from the Node, also after a restart.
func TestNPDPluginOwnsCustomCondition(t *testing.T) {
	c := cluster(t)
	const node = "node-plugin"
	a := enrol(t, c, node, "")

	// The plugin runs as nobody: its directory must be reachable.
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mode := filepath.Join(dir, "mode")
	setMode := func(m string) { write(t, mode, m) }
	setMode("fail")
	write(t, filepath.Join(dir, "check_foo.sh"), `#!/bin/sh
case "$(cat `+mode+`)" in
fail) echo "foo mount is missing (uid $(id -u))"; exit 1 ;;
hang) sleep 300 & sleep 300 ;;
*) exit 0 ;;
esac
`)
	if err := os.Chmod(filepath.Join(dir, "check_foo.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	monitor := filepath.Join(dir, "foo-plugin-monitor.json")
	write(t, monitor, `{
  "plugin": "custom",
  "pluginConfig": {"invoke_interval": "1s", "timeout": "2s", "max_output_length": 80, "concurrency": 3},
  "source": "foo-custom-plugin-monitor",
  "metricsReporting": true,
  "conditions": [{"type": "FooMountReady", "reason": "FooMounted", "message": "foo is mounted"}],
  "rules": [
    {"type": "temporary", "reason": "FooMountMissing", "path": "./check_foo.sh", "timeout": "1s"},
    {"type": "permanent", "condition": "FooMountReady", "reason": "FooMountMissing", "path": "./check_foo.sh", "timeout": "1s"}
  ]
}`)
	for _, f := range []string{mode, monitor} {
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	withPlugin := "conditions:\n  FooMountReady: {healthyReason: FooMounted, healthyMessage: foo is mounted}\nplugins: [" + monitor + "]\n"
	a.writeConfig(withPlugin)
	rec := record(t, c, node)
	a.startConnected()

	rec.nodes.wait(t, time.Time{}, 20*time.Second, "FooMountReady False with the plugin's message", func(n *corev1.Node) bool {
		fc := cond(n, "FooMountReady")
		return fc != nil && fc.Status == corev1.ConditionFalse && fc.Reason == "FooMountMissing" &&
			strings.Contains(fc.Message, "foo mount is missing (uid 65534)")
	})
	rec.events.wait(t, time.Time{}, 20*time.Second, "the temporary rule's Warning event", func(e *corev1.Event) bool {
		return e.Reason == "FooMountMissing" && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "foo mount is missing")
	})

	at := time.Now()
	setMode("ok")
	rec.nodes.wait(t, at, 20*time.Second, "FooMountReady True again", func(n *corev1.Node) bool {
		fc := cond(n, "FooMountReady")
		return fc != nil && fc.Status == corev1.ConditionTrue && fc.Reason == "FooMounted" && fc.Message == "foo is mounted"
	})

	// Hung: killed at its timeout, reported unknown, the condition kept.
	before := strings.Count(a.logs.String(), "plugin status unknown")
	setMode("hang")
	eventually(t, 20*time.Second, "the hung plugin killed and reported unknown", func() (bool, string) {
		logs := a.logs.String()
		return strings.Count(logs, "plugin status unknown") > before && strings.Contains(logs, "timed_out=true"), "not in the log"
	})
	if fc := cond(getNode(t, c, node), "FooMountReady"); fc == nil || fc.Status != corev1.ConditionTrue {
		t.Fatalf("an unknown plugin status changed the condition: %+v", fc)
	}

	at = time.Now()
	setMode("fail")
	rec.nodes.wait(t, at, 20*time.Second, "FooMountReady False again", func(n *corev1.Node) bool {
		fc := cond(n, "FooMountReady")
		return fc != nil && fc.Status == corev1.ConditionFalse
	})

	// Deleted from the config: the condition leaves the Node.
	at = time.Now()
	a.writeConfig("")
	d := rec.nodes.wait(t, at, 20*time.Second, "FooMountReady removed", func(n *corev1.Node) bool {
		return cond(n, "FooMountReady") == nil && cond(n, "KernelReady") != nil
	})
	t.Logf("FooMountReady removed %v after the config lost it", d.Round(time.Millisecond))

	// A stale copy written while the daemon is down (an old NPD, a
	// restore) is removed after a restart: ownership is in the state file.
	a.stop(syscall.SIGTERM)
	stale := []byte(`{"status":{"conditions":[{"type":"FooMountReady","status":"False","reason":"FooMountMissing","message":"stale"}]}}`)
	if _, err := c.Admin.Nodes().Patch(context.Background(), node, types.StrategicMergePatchType, stale, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	at = time.Now()
	a.start()
	rec.nodes.wait(t, at, 30*time.Second, "stale FooMountReady removed after restart", func(n *corev1.Node) bool {
		return cond(n, "FooMountReady") == nil && cond(n, "KernelReady") != nil
	})
}
