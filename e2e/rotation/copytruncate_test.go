// Package rotation runs the real daemon on a log file that is rotated with
// copy-truncate (logrotate's copytruncate) while it is written fast, and
// checks that every line written is either read or counted as lost.
package rotation

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
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

	"github.com/nodehealthd/nodehealthd/e2e/internal/testbin"
)

const (
	logPath   = "/var/log/app.log" // as the rule names it, under --root
	rotations = 10
	// The writer's pace: linesPerTick lines in one write every tick, 20,000
	// lines a second.
	tick         = 5 * time.Millisecond
	linesPerTick = 100
	// Lines are written for this long between two rotations.
	between = 300 * time.Millisecond
)

const rule = `rules:
  - name: RotationToken
    condition: KernelReady
    reason: RotationToken
    severity: Warning
    source: file
    paths: [` + logPath + `]
    patterns: ['rotation-token-(?P<n>\d+)']
    message: 'token ${n}'
`

// Only the tailed file: no kernel log, no journal.
const config = `sources:
  kmsg: {enabled: false}
  journal: {enabled: false}
`

// TestCopyTruncateUnderLoad rotates the file as logrotate does with
// copytruncate, rotate and delaycompress: older copies are renamed up
// (app.log.2.gz, …), the previous copy is compressed, the file is copied to
// app.log.1 and truncated. The writer pauses for the copy and the truncation,
// as if logrotate were instantaneous, so that every line written is in the
// copy or in the file: then lines read plus lines counted lost must equal
// lines written, and since every copy is there to be read, none is lost.
// (Lines written between a real logrotate's copy and its truncation are in
// neither; see docs/operator-guide.md.) Each rotation waits until the daemon
// has read past the previous one: two rotations between two reads of the
// file would leave a whole generation unread, which the daemon does not
// handle (rotations are minutes apart, not milliseconds).
func TestCopyTruncateUnderLoad(t *testing.T) {
	bin := testbin.Build(t)
	root := t.TempDir()
	write(t, filepath.Join(root, "proc/stat"), fmt.Sprintf("cpu  1 2 3 4\nbtime %d\n", time.Now().Add(-time.Hour).Unix()))
	write(t, filepath.Join(root, "proc/sys/kernel/random/boot_id"), "0c8b1e0c-3b5c-4a5e-9a3e-000000000002\n")
	write(t, filepath.Join(root, "rules.d/rotation.yaml"), rule)
	write(t, filepath.Join(root, "config.yaml"), config)
	file := filepath.Join(root, logPath)
	write(t, file, "")

	begin := time.Now()
	addr := freeAddr(t)
	cmd := exec.Command(filepath.Join(bin, "nodehealthd"), "--root", root, "--state-dir", filepath.Join(root, "state"),
		"--rules-dir", filepath.Join(root, "rules.d"), "--config", filepath.Join(root, "config.yaml"), "-o", "none",
		"--probes=false", "--cluster", "off", "--metrics-address", addr)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &daemonLog{}
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.add(sc.Text())
		}
	}()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-logsDone
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	}()

	source := "file:" + logPath
	// Following once the file's start position is committed.
	waitUntil(t, 15*time.Second, "the daemon follows the file", func() bool {
		_, ok := scrape(addr)[`nodehealthd_source_offset_bytes{source="`+source+`"}`]
		return ok
	})

	t.Logf("following after %v", time.Since(begin))
	var read, lost float64
	// reached reports that the daemon has read or counted more than n lines.
	reached := func(n int) bool {
		m := scrape(addr)
		read, lost = m[`nodehealthd_source_records_total{source="`+source+`"}`], m[`nodehealthd_source_records_lost_total{source="`+source+`"}`]
		return read+lost > float64(n)
	}
	w := startWriter(t, file)
	for r := 1; r <= rotations; r++ {
		time.Sleep(between)
		w.mu.Lock()
		rotate(t, file)
		before := w.n
		w.mu.Unlock()
		// A line written after the rotation is read only once the
		// truncation has been noticed.
		waitUntil(t, 30*time.Second, fmt.Sprintf("the daemon gets past rotation %d", r), func() bool { return reached(before) })
		t.Logf("rotation %d passed after %v", r, time.Since(begin))
	}
	time.Sleep(between)
	written := w.stop()
	// Until every line is accounted for, or nothing has changed for a
	// while; then nothing more may come (a line read twice).
	last, changed := -1.0, time.Now()
	for !reached(written-1) && time.Since(changed) < 5*time.Second {
		if read+lost != last {
			last, changed = read+lost, time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("settled after %v", time.Since(begin))
	time.Sleep(2 * time.Second)
	reached(written)
	t.Logf("%d lines written in %d rotations; %v read, %v counted lost", written, rotations, read, lost)
	if read+lost != float64(written) {
		t.Errorf("read %v + lost %v = %v lines, want the %d written", read, lost, read+lost, written)
	}
	if lost != 0 {
		t.Errorf("%v lines counted lost although every rotated copy was there to read", lost)
	}
	if n := logs.count("file truncated; read its last lines from the rotated copy"); n != rotations {
		t.Errorf("the daemon noticed %d rotations, want %d", n, rotations)
	}
	if n := logs.count("no rotated copy"); n != 0 {
		t.Errorf("the daemon found no rotated copy %d times", n)
	}
}

// writer appends numbered lines at a steady pace until stopped; holding mu
// pauses it between two writes.
type writer struct {
	mu      sync.Mutex
	n       int // lines written, under mu
	done    chan struct{}
	stopped chan int
}

func startWriter(t *testing.T, file string) *writer {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{done: make(chan struct{}), stopped: make(chan int, 1)}
	go func() {
		defer f.Close()
		var b bytes.Buffer
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for {
			select {
			case <-w.done:
				w.mu.Lock()
				w.stopped <- w.n
				w.mu.Unlock()
				return
			case <-tk.C:
			}
			w.mu.Lock()
			b.Reset()
			for k := range linesPerTick {
				fmt.Fprintf(&b, "I0301 10:00:00.000000 1 app.go:42] request %08d served in 3ms\n", w.n+k)
			}
			if _, err := f.Write(b.Bytes()); err != nil {
				t.Error(err)
			} else {
				w.n += linesPerTick
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// stop ends the writer and returns how many lines it wrote.
func (w *writer) stop() int {
	close(w.done)
	return <-w.stopped
}

// rotate does what logrotate does for a copytruncate, delaycompress log:
// app.log.N.gz → app.log.N+1.gz, app.log.1 → app.log.2.gz, app.log copied
// to app.log.1, app.log truncated.
func rotate(t *testing.T, file string) {
	t.Helper()
	for k := rotations + 1; k >= 2; k-- {
		from := fmt.Sprintf("%s.%d.gz", file, k)
		if _, err := os.Stat(from); err == nil {
			if err := os.Rename(from, fmt.Sprintf("%s.%d.gz", file, k+1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if b, err := os.ReadFile(file + ".1"); err == nil {
		var z bytes.Buffer
		gz := gzip.NewWriter(&z)
		gz.Write(b)
		gz.Close()
		write(t, file+".2.gz", z.String())
		if err := os.Remove(file + ".1"); err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(file + ".1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, 0); err != nil {
		t.Fatal(err)
	}
}

// daemonLog keeps the daemon's log lines.
type daemonLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *daemonLog) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
}

func (l *daemonLog) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

func (l *daemonLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// scrape returns the samples of the daemon's /metrics, by series; none when
// it does not answer.
func scrape(addr string) map[string]float64 {
	m := map[string]float64{}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
