// Package faults runs the real daemon against a state directory that
// fails under it — read-only from the start, a filesystem that fills up
// while it runs, a disk whose writes hang — and checks that detection and publishing go on, that the
// failure is visible, and that the state written once space returns holds
// everything found meanwhile.
package faults

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/e2e/internal/daemontest"
	"github.com/nodehealthd/nodehealthd/e2e/internal/testbin"
	"github.com/nodehealthd/nodehealthd/internal/publish/console"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

const rules = `rules:
  - name: FaultLine
    condition: KernelReady
    reason: FaultLine
    severity: Fatal
    source: file
    paths: [/var/log/faults.log]
    patterns: ['faultline-(?P<n>\d+)']
    key: '${n}'
    message: 'fault ${n}'
`

// daemon is one nodehealthd process and the lines it printed.
type daemon struct {
	*daemontest.Daemon
	t       *testing.T
	metrics string
	mu      sync.Mutex
	lines   []console.Line
}

func fixture(t *testing.T) (root string) {
	root = t.TempDir()
	daemontest.WriteBoot(t, root, "0c8b1e0c-3b5c-4a5e-9a3e-00000000fa17")
	daemontest.Write(t, filepath.Join(root, "rules.d/faults.yaml"), rules)
	if err := os.MkdirAll(filepath.Join(root, "var/log"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func start(t *testing.T, root, stateDir string) *daemon {
	t.Helper()
	d := &daemon{t: t}
	d.Daemon = daemontest.Start(t, []string{"--root", root, "--state-dir", stateDir,
		"--rules-dir", filepath.Join(root, "rules.d"), "--config", testbin.Config(t, filepath.Join(stateDir+".conf"), testbin.NoProbes),
		"--cluster", "off", "-o", "json", "--metrics-address", "127.0.0.1:0"},
		daemontest.Options{Stdout: func(b []byte) {
			var l console.Line
			if json.Unmarshal(b, &l) == nil {
				d.mu.Lock()
				d.lines = append(d.lines, l)
				d.mu.Unlock()
			}
		}})
	d.metrics = d.MetricsAddr(t, 30*time.Second)
	// The metrics endpoint is up before the pipeline opens its state. A
	// log file created before that is older than the daemon's first start
	// and is followed from its end (internal/source/tail): wait for the
	// pipeline, which logs its memory limit once the state is open.
	d.Eventually(t, 30*time.Second, "the pipeline started", func() (bool, string) {
		return strings.Contains(d.Log.String(), `msg="Go runtime setting" memoryLimit=`), "not yet"
	})
	return d
}

// wait polls cond with the printed lines locked.
func (d *daemon) wait(what string, cond func() bool) {
	d.t.Helper()
	d.Eventually(d.t, 30*time.Second, what, func() (bool, string) {
		d.mu.Lock()
		defer d.mu.Unlock()
		return cond(), "not yet"
	})
}

// printed counts the finding lines of reason (locked by the caller).
func (d *daemon) printed(reason string) int {
	n := 0
	for _, l := range d.lines {
		if l.Event == "finding" && l.Reason == reason {
			n++
		}
	}
	return n
}

func (d *daemon) get(path string) (int, string) {
	d.t.Helper()
	code, body, err := daemontest.Get(d.metrics, path)
	if err != nil {
		d.t.Fatal(err)
	}
	return code, body
}

func (d *daemon) saveFailures() float64 {
	m, err := daemontest.Scrape(d.metrics)
	if err != nil {
		d.t.Fatal(err)
	}
	v, ok := m["nodehealthd_state_save_failures_total"]
	if !ok {
		d.t.Fatalf("no nodehealthd_state_save_failures_total in /metrics")
	}
	return v
}

func appendLines(t *testing.T, root string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(root, "var/log/faults.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := from; i < to; i++ {
		fmt.Fprintf(f, "some app says faultline-%d now\nand an ordinary line\n", i)
	}
}

// waitStateHolds waits for the state file to hold exactly the keys of
// FaultLine findings 0..n-1, and to satisfy also when given.
func waitStateHolds(t *testing.T, d *daemon, stateDir string, n int, also ...func(*state.State) bool) *state.State {
	t.Helper()
	var st *state.State
	d.wait(fmt.Sprintf("the state file to hold all %d findings", n), func() bool {
		var err error
		st, err = state.Read(stateDir)
		if err != nil {
			return false
		}
		keys := map[string]bool{}
		for _, f := range st.Active {
			if f.Reason == "FaultLine" {
				keys[f.Key] = true
			}
		}
		for i := 0; i < n; i++ {
			if !keys[strconv.Itoa(i)] {
				return false
			}
		}
		for _, f := range also {
			if !f(st) {
				return false
			}
		}
		return len(keys) == n
	})
	return st
}

func mount(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Skipf("mount %v (needs root): %v: %s", args, err, out)
	}
}

func TestReadOnlyStateDirFromStart(t *testing.T) {
	root := fixture(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	mount(t, "--bind", "-o", "ro", stateDir, stateDir)
	mounted := true
	t.Cleanup(func() {
		if mounted {
			_ = syscall.Unmount(stateDir, syscall.MNT_DETACH)
		}
	})

	d := start(t, root, stateDir)
	appendLines(t, root, 0, 5)
	d.wait("the findings and FilesystemReadOnly printed", func() bool {
		return d.printed("FaultLine") == 5 && d.printed("FilesystemReadOnly") == 1
	})
	d.mu.Lock()
	var storage *console.Line
	for i := range d.lines {
		if l := d.lines[i]; l.Event == "condition" && l.Condition == "StorageReady" {
			storage = &l
		}
	}
	d.mu.Unlock()
	if storage == nil || storage.Status != "False" || storage.Reason != "FilesystemReadOnly" {
		t.Errorf("StorageReady printed as %+v, want False/FilesystemReadOnly", storage)
	}
	if v := d.saveFailures(); v < 1 {
		t.Errorf("nodehealthd_state_save_failures_total = %v, want > 0", v)
	}
	if code, body := d.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "degraded: state not persisted") {
		t.Errorf("/readyz = %d %q, want 503 degraded", code, body)
	}

	if err := syscall.Unmount(stateDir, syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	mounted = false
	appendLines(t, root, 5, 7)
	// The first write after the episode holds the findings; the next one,
	// right after, the record of the episode.
	st := waitStateHolds(t, d, stateDir, 7, func(st *state.State) bool { return st.LastSaveFailure != nil })
	if st.LastSaveFailure.Until.IsZero() {
		t.Errorf("the state written afterwards does not record the episode: %+v", st.LastSaveFailure)
	}
	d.wait("/readyz to answer 200 again", func() bool { code, _ := d.get("/readyz"); return code == http.StatusOK })
}

func TestStateDirFillsWhileRunning(t *testing.T) {
	root := fixture(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	mount(t, "-t", "tmpfs", "-o", "size=64k", "tmpfs", stateDir)
	t.Cleanup(func() { _ = syscall.Unmount(stateDir, syscall.MNT_DETACH) })

	d := start(t, root, stateDir)
	appendLines(t, root, 0, 3)
	waitStateHolds(t, d, stateDir, 3)

	// Fill the filesystem: the next state write cannot fit.
	fill := filepath.Join(stateDir, "fill")
	f, err := os.Create(fill)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(make([]byte, 1<<20))
	f.Close()
	if err == nil {
		t.Fatal("a 64 KiB tmpfs took 1 MiB")
	}
	appendLines(t, root, 3, 40)
	d.wait("the findings and StateNotPersisted printed while the disk is full", func() bool {
		return d.printed("FaultLine") == 40 && d.printed("StateNotPersisted") == 1
	})
	if v := d.saveFailures(); v < 1 {
		t.Errorf("nodehealthd_state_save_failures_total = %v, want > 0", v)
	}
	if code, body := d.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no space left on device") {
		t.Errorf("/readyz = %d %q, want 503 naming the full disk", code, body)
	}

	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	st := waitStateHolds(t, d, stateDir, 40)
	found := false
	for _, f := range st.Recent {
		found = found || f.Reason == "StateNotPersisted"
	}
	if !found {
		t.Error("the warning published while the disk was full is missing from the state written afterwards")
	}
}

// A disk whose I/O hangs (a stalled EBS volume) never returns from the state
// write. A frozen filesystem does the same to every write, until thawed.
// Detection and publishing must go on: the findings and StateNotPersisted
// are printed within the save timeout, and once the disk answers again the
// state file holds everything found meanwhile. The old daemon waited in
// the write, and printed nothing more until the thaw.
func TestStateDiskHangsWhileRunning(t *testing.T) {
	root := fixture(t)
	img := filepath.Join(t.TempDir(), "state.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.ext4 (e2fsprogs): %v: %s", err, out)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	mount(t, "-o", "loop", img, stateDir)
	t.Cleanup(func() { _ = syscall.Unmount(stateDir, syscall.MNT_DETACH) })

	d := start(t, root, stateDir)
	appendLines(t, root, 0, 3)
	waitStateHolds(t, d, stateDir, 3)

	if out, err := exec.Command("fsfreeze", "-f", stateDir).CombinedOutput(); err != nil {
		t.Skipf("fsfreeze: %v: %s", err, out)
	}
	frozen := true
	thaw := func() {
		if frozen {
			frozen = false
			if out, err := exec.Command("fsfreeze", "-u", stateDir).CombinedOutput(); err != nil {
				t.Errorf("fsfreeze -u: %v: %s", err, out)
			}
		}
	}
	// Before the daemon's stop, which cannot finish while a write waits.
	t.Cleanup(thaw)

	appendLines(t, root, 3, 40)
	d.wait("the findings and StateNotPersisted printed while the disk hangs", func() bool {
		return d.printed("FaultLine") == 40 && d.printed("StateNotPersisted") == 1
	})
	if code, body := d.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "hung") {
		t.Errorf("/readyz = %d %q, want 503 naming the hung write", code, body)
	}

	// The write that hung held the 40 findings but not the warning its
	// hanging raised: the state the daemon writes next holds both.
	thaw()
	waitStateHolds(t, d, stateDir, 40, func(st *state.State) bool {
		for _, f := range st.Recent {
			if f.Reason == "StateNotPersisted" {
				return true
			}
		}
		return false
	})
}
