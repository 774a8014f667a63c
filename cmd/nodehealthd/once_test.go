package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/probe"
)

// probeOnce runs --once's checks as the daemon with default options does.
func probeOnce(ctx context.Context, root string, cfg *config.Config, tags map[string]bool, log *slog.Logger, w io.Writer, format string, opts onceOptions) int {
	o := defaultOptions()
	return newEnv(ctx, log, &o, cfg, w).probeOnce(ctx, root, cfg, tags, log, w, format, opts)
}

type fakeDetector string

func (d fakeDetector) Name() string                                      { return string(d) }
func (d fakeDetector) Run(ctx context.Context, _ detector.Emitter) error { <-ctx.Done(); return nil }

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fastOnce spreads a probe's checks over milliseconds rather than seconds.
var fastOnce = onceOptions{window: 20 * time.Millisecond}

// onceTree is a host root where open files and zram are over their
// thresholds, nothing else is wrong and every probe that reads the tree
// can run.
func onceTree(t *testing.T) string {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"proc/sys/fs/file-nr":          "9000\t0\t10000\n",
		"proc/sys/kernel/pid_max":      "32768\n",
		"proc/sys/kernel/threads-max":  "100000\n",
		"proc/loadavg":                 "0.1 0.1 0.1 1/120 99\n",
		"proc/1/stat":                  "1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
		"proc/1/environ":               "PATH=/usr/bin\x00",
		"proc/1/comm":                  "systemd\n",
		"proc/1/mountinfo":             "22 1 259:1 / / rw - ext4 /dev/vda1 rw\n",
		"sys/block/zram0/mm_stat":      "4294967296 1000 1000 0 1000 0 0 0 0\n",
		"sys/block/zram0/disksize":     "8589934592\n",
		"etc/os-release":               "NAME=\"Amazon Linux\"\nID=\"amzn\"\n",
		"proc/sys/net/ipv4/ip_forward": "1\n",
		"sys/class/net/lo/flags":       "0x9\n",
		"sys/class/net/lo/operstate":   "unknown\n",
		"sys/class/net/eth0/flags":     "0x1003\n",
		"sys/class/net/eth0/operstate": "up\n",
		"sys/class/net/eth0/address":   "02:fc:00:00:00:01\n",
	})
	return root
}

// writeTree writes files (path under root → content).
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// parseOnceJSON splits --once -o json output into findings and probe
// records, failing on a line of any other kind.
func parseOnceJSON(t *testing.T, out string) ([]onceLine, []onceProbeLine) {
	t.Helper()
	var findings []onceLine
	var probes []onceProbeLine
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var kind struct{ Event string }
		if err := json.Unmarshal([]byte(line), &kind); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		switch kind.Event {
		case "finding":
			var l onceLine
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatal(err)
			}
			findings = append(findings, l)
		case "probe":
			var l onceProbeLine
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatal(err)
			}
			probes = append(probes, l)
		default:
			t.Fatalf("line of unknown event %q: %s", kind.Event, line)
		}
	}
	return findings, probes
}

// liveHostProbes are the probes built on onceTree (an Amazon Linux tree)
// that read the running host rather than the tree.
var liveHostProbes = []string{"clock-sync", "ena-allowances", "ip-rules", "iptables"}

func TestOnceJSON(t *testing.T) {
	root := onceTree(t)
	var out bytes.Buffer
	code := probeOnce(context.Background(), root, &config.Config{}, probe.HostTags(root, nil), quietLog(), &out, "json", fastOnce)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	findings, probes := parseOnceJSON(t, out.String())
	want := map[string]onceLine{
		"ApproachingMaxOpenFiles": {Event: "finding", Probe: "open-files", Condition: "KernelReady", Reason: "ApproachingMaxOpenFiles", Severity: "Warning",
			Message: "Approaching Exhaustion of max open file descriptors. 9000 of 10000 total, 90.0%"},
		"ZramHighUsage": {Event: "finding", Probe: "zram", Condition: "KernelReady", Reason: "ZramHighUsage", Severity: "Warning",
			Message: "ZRAM device zram0 at 50.0% capacity", Key: "zram0"},
	}
	for _, l := range findings {
		w, ok := want[l.Reason]
		if !ok {
			t.Errorf("unexpected finding %+v", l)
			continue
		}
		if l != w {
			t.Errorf("got %+v\nwant %+v", l, w)
		}
		delete(want, l.Reason)
	}
	for r := range want {
		t.Errorf("missing %s in:\n%s", r, out.String())
	}
	// A fixture tree is not the running host: the probes that would read
	// the host instead say so, and nothing else is reported about probes.
	var skipped []string
	for _, l := range probes {
		if l.Status != "skipped" || l.Error != "" || !strings.HasPrefix(l.Message, "reads the running host, not --root: ") {
			t.Errorf("unexpected probe record %+v", l)
			continue
		}
		skipped = append(skipped, l.Probe)
	}
	if !slices.Equal(skipped, liveHostProbes) {
		t.Errorf("skipped %v, want %v", skipped, liveHostProbes)
	}
}

// TestOnceReportsFailedProbes: a probe that cannot read what it checks is
// printed as failed and makes the exit status 1, where it used to be only
// logged, with nothing on stdout and status 0.
func TestOnceReportsFailedProbes(t *testing.T) {
	root := onceTree(t)
	writeTree(t, root, map[string]string{"proc/sys/fs/file-nr": "garbage\n"})
	// A missing sysctl; and no mount table, whose error joins two.
	for _, p := range []string{"proc/sys/net/ipv4/ip_forward", "proc/1/mountinfo"} {
		if err := os.Remove(filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if code := probeOnce(context.Background(), root, &config.Config{}, nil, quietLog(), &out, "json", fastOnce); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out.String())
	}
	findings, probes := parseOnceJSON(t, out.String())
	failed := map[string]onceProbeLine{}
	for _, l := range probes {
		if l.Status == "failed" {
			failed[l.Probe] = l
		}
	}
	if l, ok := failed["open-files"]; !ok || !strings.Contains(l.Error, "garbage") || l.Message != "" {
		t.Errorf("garbage file-nr: want a failed open-files record with the error, got %+v", l)
	}
	if l, ok := failed["network-sysctl"]; !ok || !strings.Contains(l.Error, "net.ipv4.ip_forward") {
		t.Errorf("missing sysctl: want a failed network-sysctl record, got %+v", l)
	}
	if l, ok := failed["xfs-free-space"]; !ok || !strings.Contains(l.Error, "\n") {
		t.Errorf("no mount table: want a failed xfs-free-space record with both errors, got %+v", l)
	}
	if len(failed) != 3 {
		t.Errorf("failed probes %v, want open-files, network-sysctl and xfs-free-space", failed)
	}
	for _, f := range findings {
		if f.Probe == "open-files" {
			t.Errorf("finding from a failed check: %+v", f)
		}
	}

	out.Reset()
	if code := probeOnce(context.Background(), root, &config.Config{}, nil, quietLog(), &out, "text", fastOnce); code != 1 {
		t.Fatalf("text: exit %d, want 1", code)
	}
	if !regexp.MustCompile(`(?m)^probe open-files failed: .*garbage`).MatchString(out.String()) {
		t.Errorf("text output has no failed open-files line:\n%s", out.String())
	}
	line := regexp.MustCompile(`^((Warning|Fatal  ) \S+/\S+.*\(probe \S+\)|probe \S+ (failed|inconclusive|skipped): .+)$`)
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if !line.MatchString(l) {
			t.Errorf("not a finding or probe line: %q", l)
		}
	}
	// -o none prints nothing but keeps the exit status.
	out.Reset()
	if code := probeOnce(context.Background(), root, &config.Config{}, nil, quietLog(), &out, "none", fastOnce); code != 1 || out.Len() != 0 {
		t.Errorf("-o none: exit %d, output %q", code, out.String())
	}
}

// TestOnceTakesSecondObservation: an interface down on both checks is
// reported, where one pass used to report nothing; with no window to take
// a second check in, the probe says it could not conclude.
func TestOnceTakesSecondObservation(t *testing.T) {
	root := onceTree(t)
	writeTree(t, root, map[string]string{"sys/class/net/eth0/flags": "0x1002\n", "sys/class/net/eth0/operstate": "down\n"})
	var out bytes.Buffer
	if code := probeOnce(context.Background(), root, &config.Config{}, nil, quietLog(), &out, "text", fastOnce); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), `Fatal   NetworkingReady/InterfaceNotUp [eth0]: Interface Name: "eth0", MAC: "02:fc:00:00:00:01" is not up (probe interfaces)`) {
		t.Fatalf("no InterfaceNotUp for eth0:\n%s", out.String())
	}
	if strings.Contains(out.String(), "probe interfaces ") {
		t.Errorf("interfaces concluded, yet has a probe line:\n%s", out.String())
	}

	out.Reset()
	if code := probeOnce(context.Background(), root, &config.Config{}, nil, quietLog(), &out, "json", onceOptions{}); code != 0 {
		t.Fatalf("--once-window=0: exit %d, want 0 (inconclusive is not a failure)", code)
	}
	findings, probes := parseOnceJSON(t, out.String())
	for _, f := range findings {
		if f.Reason == "InterfaceNotUp" {
			t.Errorf("one check reported %+v", f)
		}
	}
	var got *onceProbeLine
	for i, l := range probes {
		if l.Probe == "interfaces" {
			got = &probes[i]
		}
	}
	if got == nil || got.Status != "inconclusive" || got.Message != "needs 2 checks, --once-window=0 allows one" {
		t.Fatalf("--once-window=0: want interfaces inconclusive, got %+v in:\n%s", got, out.String())
	}
}

// countingProbe reports one result per check, numbered, and fails the
// check numbered failAt.
type countingProbe struct {
	needs  probe.Needs
	failAt int

	mu     sync.Mutex
	checks int
}

func (p *countingProbe) Name() string          { return "counting" }
func (p *countingProbe) Reasons() []string     { return []string{"Seen"} }
func (p *countingProbe) Period() time.Duration { return time.Minute }
func (p *countingProbe) Needs() probe.Needs    { return p.needs }
func (p *countingProbe) Check(context.Context, *probe.Env) ([]probe.Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checks++
	if p.checks == p.failAt {
		return nil, errors.New("cannot read")
	}
	return []probe.Result{{Reason: "Seen", Message: strconv.Itoa(p.checks)}}, nil
}

func TestOnceObserve(t *testing.T) {
	penv := &probe.Env{Log: quietLog(), Now: time.Now}
	window := onceOptions{window: 5 * time.Millisecond}
	cases := []struct {
		name    string
		p       *countingProbe
		opts    onceOptions
		foreign bool
		cancel  bool
		// want is the status, the detail (a prefix) and the number of
		// checks run, whose count is the last result's message.
		wantStatus, wantDetail string
		wantChecks             int
	}{
		{"one check when one concludes", &countingProbe{}, window, false, false, "", "", 1},
		{"as many checks as it needs", &countingProbe{needs: probe.Needs{Checks: 3}}, window, false, false, "", "", 3},
		{"window 0: one check, inconclusive", &countingProbe{needs: probe.Needs{Checks: 3}}, onceOptions{}, false, false,
			"inconclusive", "needs 3 checks, --once-window=0 allows one", 1},
		{"a state timed on the clock beyond the window", &countingProbe{needs: probe.Needs{Checks: 2, Lasting: time.Hour}}, window, false, false,
			"inconclusive", "reports a state only once it has lasted 1h0m0s, longer than --once-window (5ms)", 2},
		{"a failed check ends it, keeping the last good results", &countingProbe{needs: probe.Needs{Checks: 3}, failAt: 2}, window, false, false,
			"failed", "cannot read", 1},
		{"live host under a foreign root: skipped", &countingProbe{needs: probe.Needs{LiveHost: "the kernel clock"}}, window, true, false,
			"skipped", "reads the running host, not --root: the kernel clock", 0},
		{"live host under a foreign root with --once-live-host", &countingProbe{needs: probe.Needs{LiveHost: "the kernel clock"}},
			onceOptions{window: window.window, liveHost: true}, true, false, "", "", 1},
		{"live host under /", &countingProbe{needs: probe.Needs{LiveHost: "the kernel clock"}}, window, false, false, "", "", 1},
		{"interrupted between checks", &countingProbe{needs: probe.Needs{Checks: 2}}, onceOptions{window: time.Hour}, false, true,
			"inconclusive", "needs 2 checks, stopped after 1: ", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.cancel {
				// The first check runs at once; the wait for the second
				// is what the cancellation ends.
				go func() {
					for {
						c.p.mu.Lock()
						n := c.p.checks
						c.p.mu.Unlock()
						if n > 0 {
							cancel()
							return
						}
						time.Sleep(time.Millisecond)
					}
				}()
			}
			o := observe(ctx, c.p, penv, time.Now(), c.opts, c.foreign)
			if o.status != c.wantStatus || !strings.HasPrefix(o.detail, c.wantDetail) || (c.wantDetail == "" && o.detail != "") {
				t.Errorf("status %q detail %q, want %q %q", o.status, o.detail, c.wantStatus, c.wantDetail)
			}
			last := 0
			if len(o.results) > 0 {
				last, _ = strconv.Atoi(o.results[len(o.results)-1].Message)
			}
			if last != c.wantChecks {
				t.Errorf("results of check %d, want those of check %d (%d checks run)", last, c.wantChecks, c.p.checks)
			}
		})
	}
}

func TestOnceTextAndDisabledReason(t *testing.T) {
	root := onceTree(t)
	no := false
	cfg, err := config.Parse([]byte("probes:\n  open-files:\n    threshold: 0.95\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Reasons = map[string]policy.Override{"ZramHighUsage": {Enabled: &no}}
	var out bytes.Buffer
	if code := probeOnce(context.Background(), root, cfg, nil, quietLog(), &out, "text", fastOnce); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(out.String(), "ApproachingMaxOpenFiles") || strings.Contains(out.String(), "ZramHighUsage") {
		t.Fatalf("threshold 0.95 and a disabled reason: want neither, got:\n%s", out.String())
	}
	cfg.Reasons = nil
	out.Reset()
	probeOnce(context.Background(), root, cfg, nil, quietLog(), &out, "text", fastOnce)
	if !strings.Contains(out.String(), "Warning KernelReady/ZramHighUsage [zram0]: ZRAM device zram0 at 50.0% capacity (probe zram)") {
		t.Fatalf("text output:\n%s", out.String())
	}
	cfg.Reasons = map[string]policy.Override{"ZramHighUsage": {Severity: "Fatal"}}
	out.Reset()
	probeOnce(context.Background(), root, cfg, nil, quietLog(), &out, "text", fastOnce)
	if !strings.Contains(out.String(), "Fatal   KernelReady/ZramHighUsage [zram0]") {
		t.Fatalf("severity override not applied:\n%s", out.String())
	}
}

func TestOnceBadProbeConfig(t *testing.T) {
	cfg, err := config.Parse([]byte("probes:\n  no-such-probe: {}\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if code := probeOnce(context.Background(), t.TempDir(), cfg, nil, quietLog(), io.Discard, "json", fastOnce); code == 0 {
		t.Fatal("unknown probe section: want a non-zero exit")
	}
}

// --once runs the probes and exits before anything else is set up (it
// binds no port: a metrics address in use does not matter to it).
func TestOnceRunsAndExits(t *testing.T) {
	root := onceTree(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var out bytes.Buffer
	args := []string{"--once", "-o", "json", "--tags", "hybrid", "--once-window", "20ms", "--root", root,
		"--config", filepath.Join(t.TempDir(), "none.yaml"), "--metrics-address", busy.Addr().String(), "--cluster", "bogus"}
	if code := run(context.Background(), args, &out, io.Discard); code != 0 {
		t.Fatalf("--once exit code %d, want 0\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), `"reason":"ZramHighUsage"`) {
		t.Fatalf("-o json output:\n%s", out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"--once", "--once-window", "-1s", "--root", root}, &out, io.Discard); code != 2 || out.Len() != 0 {
		t.Fatalf("negative --once-window: exit %d, output %q; want 2 and nothing run", code, out.String())
	}
}

func TestProbesComposeNewDetectors(t *testing.T) {
	root := onceTree(t)
	o := defaultOptions()
	o.root = root
	e := newEnv(context.Background(), quietLog(), &o, &config.Config{}, io.Discard)
	other := fakeDetector("accelerators")
	e.detectors = append(e.detectors, func(daemon.SourceContext) []detector.Detector { return []detector.Detector{other} })
	e.setupProbes()
	dets := e.opts.NewDetectors(daemon.SourceContext{Root: root, Config: &config.Config{}, Logger: quietLog()})
	if len(dets) != 2 || dets[0] != other {
		t.Fatalf("detectors %v: want the earlier one kept and the probe runner added", dets)
	}
	r, ok := dets[1].(*probe.Runner)
	if !ok || len(r.Probes) == 0 || !r.Env.Tags["amzn"] || r.Env.Root != root {
		t.Fatalf("runner %+v", dets[1])
	}
	// A broken probes section falls back to defaults instead of no probes.
	bad, _ := config.Parse([]byte("probes:\n  zram:\n    threshold: 7\n"), "test")
	dets = e.opts.NewDetectors(daemon.SourceContext{Root: root, Config: bad, Logger: quietLog()})
	if len(dets) != 2 || len(dets[1].(*probe.Runner).Probes) != len(r.Probes) {
		t.Fatalf("bad section: %v", dets)
	}
}

// probes.enabled is read from each configuration the detectors are built
// from, so turning it off (or on again) takes effect on reload.
func TestProbesSwitchFollowsConfig(t *testing.T) {
	root := onceTree(t)
	o := defaultOptions()
	o.root = root
	e := newEnv(context.Background(), quietLog(), &o, &config.Config{}, io.Discard)
	e.setupProbes()
	build := func(doc string) []detector.Detector {
		cfg, err := config.Parse([]byte(doc), "test")
		if err != nil {
			t.Fatal(err)
		}
		return e.opts.NewDetectors(daemon.SourceContext{Root: root, Config: cfg, Logger: quietLog()})
	}
	if dets := build("probes:\n  enabled: false\n  zram: {threshold: 0.5}\n"); len(dets) != 0 {
		t.Fatalf("probes.enabled: false built %v", dets)
	}
	if dets := build("probes:\n  enabled: true\n"); len(dets) != 1 {
		t.Fatalf("probes.enabled: true built %v, want the probe runner", dets)
	}
	var out bytes.Buffer
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("probes: {enabled: false}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run(context.Background(), []string{"--once", "--root", root, "--config", cfg, "--once-window", "0s"}, &out, io.Discard); code != 0 || out.Len() != 0 {
		t.Fatalf("--once with probes off: exit %d, output %q; want 0 and nothing checked", code, out.String())
	}
}
