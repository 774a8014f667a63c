// Package flood runs the real nodehealthd binary under a log flood: it
// tails a kern.log-style file with node-problem-detector's 14 kernel-monitor
// rules (lines_test.go), lines are appended to it all at once, and the run
// is measured from the first appended byte to the commit of the last line.
//
// TestFloodAccounting checks, on small floods, that every matching line is
// accounted for: as a finding, as a repeat folded into one (a coalesced
// Warning, an active Fatal seen again), or as a counted drop. It asserts
// nothing about time.
//
// BenchmarkFlood is the measurement scripts/bench.sh reports: CPU per line
// (utime+stime of the daemon process from /proc/PID/stat, from the start
// of the flood to the commit of its last line, divided by the lines) and
// peak RSS (VmHWM). It checks the same accounting. The daemon runs with
// --cluster off -o none, probes off under a fixture --root, so that
// only the flooded file is read (no kmsg, no journal, no host probes).
//
// NODEHEALTHD_BIN names a nodehealthd binary to run (scripts/bench.sh
// passes the stripped `make build` one); by default it is built from this
// checkout. NODEHEALTHD_FLOOD_LINES scales the benchmark's 1-in-1000 case
// (default 1,000,000 lines; the every-line case has a fifth of them).
package flood

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/e2e/internal/daemontest"
	"github.com/nodehealthd/nodehealthd/e2e/internal/testbin"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// logPath is the flooded file, as the rules name it (under the root).
const logPath = "/var/log/kern.log"

// result is one measured flood.
type result struct {
	lines      int
	cpu        time.Duration // daemon utime+stime during the flood
	took       time.Duration // wall time from the write to the commit of the last line
	hwm, rss   int64         // VmHWM at the end, VmRSS before the flood (bytes)
	anon, file int64         // RssAnon and RssFile at the end
	want       map[string]int
	msgs       map[string][]string // matching messages by reason
	stateDir   string
	findings   map[string]int // nodehealthd_findings_total per reason
	repeats    map[string]int // nodehealthd_finding_repeats_total per reason
	accounting error
}

func (r result) perLine() time.Duration { return r.cpu / time.Duration(r.lines) }

// daemon is a running nodehealthd on a fixture root.
type daemon struct {
	*daemontest.Daemon
	root     string
	stateDir string
	metrics  string // host:port of /metrics
}

func binary(tb testing.TB) string {
	if b := os.Getenv("NODEHEALTHD_BIN"); b != "" {
		return b
	}
	return filepath.Join(testbin.Build(tb), "nodehealthd")
}

// start runs the daemon on a new fixture root whose log file exists and is
// empty, and waits until it follows the file.
func start(tb testing.TB, env ...string) *daemon {
	tb.Helper()
	dir := tb.TempDir()
	root := filepath.Join(dir, "root")
	daemontest.WriteBoot(tb, root, "0c8b1e0c-3b5c-4a5e-9a3e-00000000f100")
	daemontest.Write(tb, filepath.Join(root, logPath), "")
	daemontest.Write(tb, filepath.Join(dir, "rules.d/npd.yaml"), rulesYAML(logPath))
	d := &daemon{root: root, stateDir: filepath.Join(dir, "state")}
	args := []string{"--root", root, "--state-dir", d.stateDir, "--rules-dir", filepath.Join(dir, "rules.d"),
		"--config", testbin.Config(tb, filepath.Join(dir, "conf"), testbin.NoProbes), "--cluster", "off", "-o", "none", "--metrics-address", "127.0.0.1:0"}
	if profileDir != "" {
		// The binary must have the profiler: make build TAGS=pprof, given
		// as NODEHEALTHD_BIN (docs/performance.md).
		args = append(args, "--pprof")
	}
	d.Daemon = daemontest.Start(tb, args, daemontest.Options{Bin: binary(tb), Env: env})
	d.metrics = d.MetricsAddr(tb, 30*time.Second)
	d.waitOffset(tb, 0, 30*time.Second)
	return d
}

// waitOffset waits until the state file holds off as the file's position.
func (d *daemon) waitOffset(tb testing.TB, off int64, limit time.Duration) {
	tb.Helper()
	d.Eventually(tb, limit, fmt.Sprintf("position %d committed", off), func() (bool, string) {
		st, err := state.Read(d.stateDir)
		if err != nil {
			return false, err.Error()
		}
		p, ok := st.Positions["file:"+logPath]
		return ok && p.Offset == off, fmt.Sprintf("position %+v", p)
	})
}

// cpu is the daemon's utime+stime.
func (d *daemon) cpu(tb testing.TB) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.Pid()))
	if err != nil {
		tb.Fatal(err)
	}
	// The command name may hold spaces: fields count from after its ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	// USER_HZ is 100 on every Linux this runs on.
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// status returns a field of /proc/PID/status in bytes.
func (d *daemon) status(tb testing.TB, field string) int64 {
	kb, err := daemontest.StatusKB(d.Pid(), field)
	if err != nil {
		tb.Fatal(err)
	}
	return kb << 10
}

// run floods a new daemon with f and measures it.
func run(tb testing.TB, name string, f flood, env ...string) result {
	tb.Helper()
	data, want, msgs := f.generate()
	d := start(tb, env...)
	r := result{lines: f.lines, want: want, msgs: msgs, stateDir: d.stateDir, rss: d.status(tb, "VmRSS")}
	out, err := os.OpenFile(filepath.Join(d.root, logPath), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close()

	profiled := d.profile(tb, name)
	cpu0, t0 := d.cpu(tb), time.Now()
	if _, err := out.Write(data); err != nil {
		tb.Fatal(err)
	}
	d.waitOffset(tb, int64(len(data)), 10*time.Minute)
	r.cpu, r.took = d.cpu(tb)-cpu0, time.Since(t0)
	r.hwm = d.status(tb, "VmHWM")
	r.anon, r.file = d.status(tb, "RssAnon"), d.status(tb, "RssFile")
	<-profiled
	if os.Getenv("NODEHEALTHD_FLOOD_NO_ACCOUNTING") != "" {
		return r
	}

	// Coalesced repeats are committed as a finding when their window
	// ends; wait for that before counting.
	deadline := time.Now().Add(time.Minute)
	for {
		r.findings, r.repeats = d.scrape(tb)
		r.accounting = r.check()
		if r.accounting == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return r
}

// check compares what the daemon counted with the matching lines.
func (r result) check() error {
	var bad []string
	for reason, n := range r.want {
		if got := r.findings[reason] + r.repeats[reason]; got != n {
			bad = append(bad, fmt.Sprintf("%s: %d findings + %d repeats, want %d", reason, r.findings[reason], r.repeats[reason], n))
		}
	}
	for reason := range r.findings {
		if _, ok := r.want[reason]; !ok {
			bad = append(bad, fmt.Sprintf("unexpected findings of %s: %d", reason, r.findings[reason]))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("matching lines not accounted for:\n  %s", strings.Join(bad, "\n  "))
	}
	return nil
}

var (
	labelled    = regexp.MustCompile(`^(nodehealthd_[a-z_]+)\{([^}]*)\}$`)
	reasonLabel = regexp.MustCompile(`reason="([^"]*)"`)
)

// scrape reads the per-reason finding counters of /metrics.
func (d *daemon) scrape(tb testing.TB) (findings, repeats map[string]int) {
	m, err := daemontest.Scrape(d.metrics)
	if err != nil {
		tb.Fatal(err)
	}
	findings, repeats = map[string]int{}, map[string]int{}
	for series, v := range m {
		l := labelled.FindStringSubmatch(series)
		if l == nil {
			continue
		}
		reason := ""
		if r := reasonLabel.FindStringSubmatch(l[2]); r != nil {
			reason = r[1]
		}
		switch l[1] {
		case "nodehealthd_findings_total":
			findings[reason] += int(v)
		case "nodehealthd_finding_repeats_total":
			repeats[reason] += int(v)
		}
	}
	return findings, repeats
}

// profileDir, when set, receives a CPU profile of the daemon over the
// first seconds of each flood and a heap profile after it, as
// NAME.cpu.pprof and NAME.heap.pprof (go tool pprof BINARY FILE).
var profileDir = os.Getenv("NODEHEALTHD_FLOOD_PROFILE")

// profile starts a CPU profile of the flood when profileDir is set; the
// channel closes once it is written.
func (d *daemon) profile(tb testing.TB, name string) <-chan struct{} {
	done := make(chan struct{})
	if profileDir == "" {
		close(done)
		return done
	}
	get := func(path, file string) {
		_, b, err := daemontest.Get(d.metrics, path)
		if err != nil {
			tb.Error(err)
			return
		}
		if err := os.WriteFile(filepath.Join(profileDir, file), []byte(b), 0o644); err != nil {
			tb.Error(err)
		}
	}
	go func() {
		defer close(done)
		get("/debug/pprof/profile?seconds=3", name+".cpu.pprof")
		get("/debug/pprof/heap", name+".heap.pprof")
	}()
	time.Sleep(100 * time.Millisecond) // let the profile start
	return done
}

// The two cases of the table.
func oneInThousand(lines int) flood { return flood{lines: lines, every: 1000, matches: varied} }
func everyLine(lines int) flood     { return flood{lines: lines, every: 1, matches: repeated} }

func benchLines(b *testing.B) int {
	if v := os.Getenv("NODEHEALTHD_FLOOD_LINES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 1_000_000
}

func BenchmarkFlood(b *testing.B) {
	n := benchLines(b)
	for _, c := range []struct {
		name string
		f    flood
	}{
		{"OneInThousand", oneInThousand(n)},
		{"EveryLine", everyLine(n / 5)},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				r := run(b, c.name, c.f)
				b.ReportMetric(float64(r.perLine().Nanoseconds())/1000, "µs/line")
				b.ReportMetric(float64(r.hwm)/(1<<20), "peak-MiB")
				b.ReportMetric(float64(r.lines), "lines")
				b.ReportMetric(float64(r.rss)/(1<<20), "start-MiB")
				b.ReportMetric(float64(r.anon)/(1<<20), "end-anon-MiB")
				b.ReportMetric(float64(r.file)/(1<<20), "end-file-MiB")
				b.ReportMetric(r.took.Seconds(), "wall-s")
				if os.Getenv("NODEHEALTHD_FLOOD_NO_ACCOUNTING") == "" {
					if r.accounting != nil {
						b.Fatal(r.accounting)
					}
					findings, repeats := 0, 0
					for reason := range r.want {
						findings += r.findings[reason]
						repeats += r.repeats[reason]
					}
					b.ReportMetric(float64(findings), "findings")
					b.ReportMetric(float64(repeats), "repeats")
				}
			}
		})
	}
}
