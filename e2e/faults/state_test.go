// Package faults runs the real daemon against a state directory that
// fails under it — read-only from the start, a filesystem that fills up
// while it runs — and checks that detection and publishing go on, that the
// failure is visible, and that the state written once space returns holds
// everything found meanwhile.
package faults

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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

// daemon is one nodehealthd process and what it printed.
type daemon struct {
	t       *testing.T
	cmd     *exec.Cmd
	mu      sync.Mutex
	lines   []console.Line
	logs    bytes.Buffer
	metrics string
	done    chan struct{}
}

func fixture(t *testing.T) (root string) {
	root = t.TempDir()
	boot := time.Now().Add(-time.Hour)
	write(t, filepath.Join(root, "proc/stat"), fmt.Sprintf("cpu  1 2 3 4\nbtime %d\n", boot.Unix()))
	write(t, filepath.Join(root, "proc/sys/kernel/random/boot_id"), "0c8b1e0c-3b5c-4a5e-9a3e-00000000fa17\n")
	write(t, filepath.Join(root, "rules.d/faults.yaml"), rules)
	if err := os.MkdirAll(filepath.Join(root, "var/log"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

var metricsAddr = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)

func start(t *testing.T, root, stateDir string) *daemon {
	t.Helper()
	bin := testbin.Build(t)
	d := &daemon{t: t, done: make(chan struct{})}
	d.cmd = exec.Command(filepath.Join(bin, "nodehealthd"), "--root", root, "--state-dir", stateDir,
		"--rules-dir", filepath.Join(root, "rules.d"), "--config", testbin.Config(t, filepath.Join(stateDir+".conf"), ""),
		"--probes=false", "--cluster", "off", "-o", "json", "--metrics-address", "127.0.0.1:0")
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var l console.Line
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				d.mu.Lock()
				d.lines = append(d.lines, l)
				d.mu.Unlock()
			}
		}
	}()
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.logs.Write(sc.Bytes())
			d.logs.WriteByte('\n')
			if m := metricsAddr.FindSubmatch(sc.Bytes()); m != nil {
				d.metrics = string(m[1])
			}
			d.mu.Unlock()
		}
	}()
	go func() { wg.Wait(); _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(d.stop)
	d.wait("the metrics endpoint", func() bool { return d.metrics != "" })
	return d
}

func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// wait polls cond with the daemon's output locked.
func (d *daemon) wait(what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d.mu.Lock()
		ok := cond()
		d.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-d.done:
			d.t.Fatalf("the daemon exited while waiting for %s:\n%s", what, d.logText())
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out waiting for %s; daemon log:\n%s", what, d.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemon) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
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
	resp, err := http.Get("http://" + d.metrics + path)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var saveFailures = regexp.MustCompile(`(?m)^nodehealthd_state_save_failures_total (\S+)$`)

func (d *daemon) saveFailures() float64 {
	_, body := d.get("/metrics")
	m := saveFailures.FindStringSubmatch(body)
	if m == nil {
		d.t.Fatalf("no nodehealthd_state_save_failures_total in /metrics")
	}
	v, _ := strconv.ParseFloat(m[1], 64)
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

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
