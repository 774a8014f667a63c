package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/rules"
)

// newTestFlagSet registers the -o flag and the flags of the once and probes
// subsystems, which resets their variables to the defaults.
func newTestFlagSet(t *testing.T) *flag.FlagSet {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.String("o", "text", "")
	for _, s := range subsystems {
		if s.name == "once" || s.name == "probes" {
			s.flags(fs)
		}
	}
	return fs
}

func subsystemNames() []string {
	var out []string
	for _, s := range subsystems {
		out = append(out, s.name)
	}
	return out
}

type fakeDetector string

func (d fakeDetector) Name() string                                      { return string(d) }
func (d fakeDetector) Run(ctx context.Context, _ detector.Emitter) error { <-ctx.Done(); return nil }

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// onceTree is a host root where open files and zram are over their
// thresholds and nothing else is wrong.
func onceTree(t *testing.T) string {
	root := t.TempDir()
	for p, content := range map[string]string{
		"proc/sys/fs/file-nr":         "9000\t0\t10000\n",
		"proc/sys/kernel/pid_max":     "32768\n",
		"proc/sys/kernel/threads-max": "100000\n",
		"proc/loadavg":                "0.1 0.1 0.1 1/120 99\n",
		"proc/1/stat":                 "1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
		"proc/1/environ":              "PATH=/usr/bin\x00",
		"proc/1/comm":                 "systemd\n",
		"proc/1/mountinfo":            "22 1 259:1 / / rw - ext4 /dev/vda1 rw\n",
		"sys/block/zram0/mm_stat":     "4294967296 1000 1000 0 1000 0 0 0 0\n",
		"sys/block/zram0/disksize":    "8589934592\n",
		"etc/os-release":              "NAME=\"Amazon Linux\"\nID=\"amzn\"\n",
	} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestOnceJSON(t *testing.T) {
	root := onceTree(t)
	var out bytes.Buffer
	code := probeOnce(context.Background(), root, &config.Config{}, probe.HostTags(root, nil), quietLog(), &out, "json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var got []onceLine
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var l onceLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		got = append(got, l)
	}
	want := map[string]onceLine{
		"ApproachingMaxOpenFiles": {Probe: "open-files", Condition: "KernelReady", Reason: "ApproachingMaxOpenFiles", Severity: "Warning",
			Message: "Approaching Exhaustion of max open file descriptors. 9000 of 10000 total, 90.0%"},
		"ZramHighUsage": {Probe: "zram", Condition: "KernelReady", Reason: "ZramHighUsage", Severity: "Warning",
			Message: "ZRAM device zram0 at 50.0% capacity", Key: "zram0"},
	}
	for _, l := range got {
		if l.Reason == "ClockUnsynchronized" || strings.HasPrefix(l.Probe, "net") || l.Condition == "NetworkingReady" {
			continue // the real kernel clock, or networking probes' view of the tree
		}
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
}

func TestOnceTextAndDisabledReason(t *testing.T) {
	root := onceTree(t)
	no := false
	cfg, err := config.Parse([]byte("probes:\n  open-files:\n    threshold: 0.95\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Reasons = map[string]rules.Override{"ZramHighUsage": {Enabled: &no}}
	var out bytes.Buffer
	if code := probeOnce(context.Background(), root, cfg, nil, quietLog(), &out, "text"); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(out.String(), "ApproachingMaxOpenFiles") || strings.Contains(out.String(), "ZramHighUsage") {
		t.Fatalf("threshold 0.95 and a disabled reason: want neither, got:\n%s", out.String())
	}
	cfg.Reasons = nil
	out.Reset()
	probeOnce(context.Background(), root, cfg, nil, quietLog(), &out, "text")
	if !strings.Contains(out.String(), "Warning KernelReady/ZramHighUsage [zram0]: ZRAM device zram0 at 50.0% capacity (probe zram)") {
		t.Fatalf("text output:\n%s", out.String())
	}
	cfg.Reasons = map[string]rules.Override{"ZramHighUsage": {Severity: "Fatal"}}
	out.Reset()
	probeOnce(context.Background(), root, cfg, nil, quietLog(), &out, "text")
	if !strings.Contains(out.String(), "Fatal   KernelReady/ZramHighUsage [zram0]") {
		t.Fatalf("severity override not applied:\n%s", out.String())
	}
}

func TestOnceBadProbeConfig(t *testing.T) {
	cfg, err := config.Parse([]byte("probes:\n  no-such-probe: {}\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if code := probeOnce(context.Background(), t.TempDir(), cfg, nil, quietLog(), io.Discard, "json"); code == 0 {
		t.Fatal("unknown probe section: want a non-zero exit")
	}
}

func TestOnceSubsystemRunsFirstAndExits(t *testing.T) {
	if subsystems[0].name != "once" {
		t.Fatalf("subsystem order %v: --once must be set up first", subsystemNames())
	}
	fs := newTestFlagSet(t)
	root := onceTree(t)
	if err := fs.Parse([]string{"--once", "-o", "json", "--tags", "hybrid"}); err != nil {
		t.Fatal(err)
	}
	defer func() { runOnce = false; probeTags = "" }()
	exited := -1
	var out bytes.Buffer
	onceExit, onceOut = func(code int) { exited = code }, &out
	defer func() { onceExit, onceOut = os.Exit, os.Stdout }()
	var opts daemon.Options
	if err := setupOnce(&env{ctx: context.Background(), log: quietLog(), root: root, cfg: &config.Config{}, opts: &opts}); err != nil {
		t.Fatal(err)
	}
	if exited != 0 {
		t.Fatalf("--once exit code %d, want 0", exited)
	}
	if !strings.Contains(out.String(), `"reason":"ZramHighUsage"`) {
		t.Fatalf("-o json output:\n%s", out.String())
	}
}

func TestProbesComposeNewDetectors(t *testing.T) {
	fs := newTestFlagSet(t)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	var opts daemon.Options
	other := fakeDetector("accelerators")
	opts.NewDetectors = func(daemon.SourceContext) []detector.Detector { return []detector.Detector{other} }
	root := onceTree(t)
	e := &env{ctx: context.Background(), log: quietLog(), root: root, cfg: &config.Config{}, opts: &opts}
	if err := setupProbes(e); err != nil {
		t.Fatal(err)
	}
	dets := opts.NewDetectors(daemon.SourceContext{Root: root, Config: &config.Config{}, Logger: quietLog()})
	if len(dets) != 2 || dets[0] != other {
		t.Fatalf("detectors %v: want the earlier one kept and the probe runner added", dets)
	}
	r, ok := dets[1].(*probe.Runner)
	if !ok || len(r.Probes) == 0 || !r.Env.Tags["amzn"] || r.Env.Root != root {
		t.Fatalf("runner %+v", dets[1])
	}
	// A broken probes section falls back to defaults instead of no probes.
	bad, _ := config.Parse([]byte("probes:\n  zram:\n    threshold: 7\n"), "test")
	dets = opts.NewDetectors(daemon.SourceContext{Root: root, Config: bad, Logger: quietLog()})
	if len(dets) != 2 || len(dets[1].(*probe.Runner).Probes) != len(r.Probes) {
		t.Fatalf("bad section: %v", dets)
	}
}

func TestProbesFlagOff(t *testing.T) {
	fs := newTestFlagSet(t)
	if err := fs.Parse([]string{"--probes=false"}); err != nil {
		t.Fatal(err)
	}
	defer func() { probesOn = true }()
	var opts daemon.Options
	if err := setupProbes(&env{ctx: context.Background(), log: quietLog(), root: t.TempDir(), cfg: &config.Config{}, opts: &opts}); err != nil {
		t.Fatal(err)
	}
	if opts.NewDetectors != nil {
		t.Fatal("--probes=false still installed probes")
	}
}
