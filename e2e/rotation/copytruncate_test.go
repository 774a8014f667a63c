// Package rotation runs the real daemon on a log file that is rotated with
// copy-truncate (logrotate's copytruncate) while it is written fast, and
// checks that every line written is either read or counted as lost.
package rotation

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/e2e/internal/daemontest"
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
const config = `probes: {enabled: false}
sources:
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
	root := t.TempDir()
	daemontest.WriteBoot(t, root, "0c8b1e0c-3b5c-4a5e-9a3e-000000000002")
	daemontest.Write(t, filepath.Join(root, "rules.d/rotation.yaml"), rule)
	daemontest.Write(t, filepath.Join(root, "config.yaml"), config)
	file := filepath.Join(root, logPath)
	daemontest.Write(t, file, "")

	begin := time.Now()
	addr := daemontest.FreeAddr(t)
	d := daemontest.Start(t, []string{"--root", root, "--state-dir", filepath.Join(root, "state"),
		"--rules-dir", filepath.Join(root, "rules.d"), "--config", filepath.Join(root, "config.yaml"), "-o", "none",
		"--cluster", "off", "--metrics-address", addr}, daemontest.Options{})

	source := "file:" + logPath
	// Following once the file's start position is committed.
	d.Eventually(t, 15*time.Second, "the daemon follows the file", func() (bool, string) {
		m, err := daemontest.Scrape(addr)
		_, ok := m[`nodehealthd_source_offset_bytes{source="`+source+`"}`]
		return ok, fmt.Sprintf("no offset for %s (%v)", source, err)
	})

	t.Logf("following after %v", time.Since(begin))
	var read, lost float64
	// reached reports that the daemon has read or counted more than n lines.
	reached := func(n int) bool {
		m, _ := daemontest.Scrape(addr)
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
		d.Eventually(t, 30*time.Second, fmt.Sprintf("the daemon gets past rotation %d", r), func() (bool, string) {
			return reached(before), fmt.Sprintf("%v read + %v lost, %d written", read, lost, before)
		})
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
	if n := d.Log.Count("file truncated; read its last lines from the rotated copy"); n != rotations {
		t.Errorf("the daemon noticed %d rotations, want %d", n, rotations)
	}
	if n := d.Log.Count("no rotated copy"); n != 0 {
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
		daemontest.Write(t, file+".2.gz", z.String())
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
