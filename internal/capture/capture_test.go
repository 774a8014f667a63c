package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodehealthd/nodehealthd/internal/atomicfile/atomicfiletest"
	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/publish"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeCollector writes a stand-in for nodehealthctl: a shell script that
// finds -o among its arguments and runs body.
func fakeCollector(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nodehealthctl")
	script := "#!/bin/sh\nout=\"\"\nargs=\"$*\"\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in -o) out=\"$2\"; shift;; esac\n  shift\ndone\n" + body + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// writes is a collector that writes a bundle and reports it.
const writes = `printf 'bundle' > "$out"; printf '{"path":"%s","bytes":6,"items":1,"complete":true}\n' "$out"`

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func conds(status map[string]string) map[string]condition.Condition {
	out := map[string]condition.Condition{}
	for typ, s := range status {
		reason := typ + "Fine"
		if s == condition.False {
			reason = typ + "Broken"
		}
		out[typ] = condition.Condition{Type: typ, Status: s, Reason: reason}
	}
	return out
}

func queued(c *Capturer) []trigger {
	var out []trigger
	for {
		select {
		case t := <-c.queue:
			out = append(out, t)
		default:
			return out
		}
	}
}

func reasons(ts []trigger) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.reason)
	}
	return out
}

// TestTriggerFirstTransitionOnly: a capture is queued when a condition
// turns False, not for a condition already False at start, not again
// while it stays False (more findings, another message), and again after
// it recovered and failed anew.
func TestTriggerFirstTransitionOnly(t *testing.T) {
	c := New(Options{Log: quiet}, config.Diagnostics{})
	T, F := condition.True, condition.False
	steps := []struct {
		status map[string]string
		want   []string
	}{
		{map[string]string{"KernelReady": F, "StorageReady": T}, nil}, // restored at start
		{map[string]string{"KernelReady": F, "StorageReady": T}, nil},
		{map[string]string{"KernelReady": F, "StorageReady": F}, []string{"StorageReadyBroken"}},
		{map[string]string{"KernelReady": F, "StorageReady": F}, nil},
		{map[string]string{"KernelReady": T, "StorageReady": F}, nil},
		{map[string]string{"KernelReady": F, "StorageReady": F}, []string{"KernelReadyBroken"}},
	}
	for i, s := range steps {
		c.Publish(publish.Update{Time: time.Now(), Conditions: conds(s.status), ConditionsChanged: true})
		if got := reasons(queued(c)); strings.Join(got, ",") != strings.Join(s.want, ",") {
			t.Errorf("step %d: queued %v, want %v", i, got, s.want)
		}
	}
	// A message change of a False condition is not a transition.
	cs := conds(map[string]string{"KernelReady": F, "StorageReady": F})
	k := cs["KernelReady"]
	k.Message, k.Reason = "another finding too", "OtherReason"
	cs["KernelReady"] = k
	c.Publish(publish.Update{Conditions: cs, ConditionsChanged: true})
	if got := queued(c); len(got) != 0 {
		t.Errorf("a False condition with a new message queued %v", reasons(got))
	}

	off := false
	c = New(Options{Log: quiet}, config.Diagnostics{OnFatal: config.Toggle{Enabled: &off}})
	c.Publish(publish.Update{Conditions: conds(map[string]string{"KernelReady": T})})
	c.Publish(publish.Update{Conditions: conds(map[string]string{"KernelReady": F})})
	if got := queued(c); len(got) != 0 {
		t.Errorf("onFatal disabled, queued %v", reasons(got))
	}
}

// TestTriggerWarningReasons: a committed Warning of a listed reason
// queues a capture; other Warnings and Fatal findings of that reason do
// not (Fatal ones act through their condition).
func TestTriggerWarningReasons(t *testing.T) {
	c := New(Options{Log: quiet}, config.Diagnostics{OnWarning: []string{"AppCrash", "OOMKill"}})
	c.Publish(publish.Update{Conditions: conds(map[string]string{"KernelReady": condition.True})})
	c.Publish(publish.Update{New: []finding.Finding{
		{Reason: "AppCrash", Severity: finding.Warning, Condition: finding.KernelReady},
		{Reason: "SoftLockup", Severity: finding.Warning, Condition: finding.KernelReady},
		{Reason: "OOMKill", Severity: finding.Fatal, Condition: finding.KernelReady},
	}})
	got := queued(c)
	if len(got) != 1 || got[0].reason != "AppCrash" || got[0].what != "Warning" {
		t.Fatalf("queued %+v, want AppCrash only", got)
	}
	// Reloaded without the reason: nothing more.
	c.Configure(config.Diagnostics{})
	c.Publish(publish.Update{New: []finding.Finding{{Reason: "AppCrash", Severity: finding.Warning}}})
	if got := queued(c); len(got) != 0 {
		t.Errorf("after reload without onWarning, queued %v", reasons(got))
	}
}

// clock is a settable time for the rate limit.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func bundleNames(t *testing.T, dir string) []string {
	t.Helper()
	bs, err := bundles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range bs {
		out = append(out, b.name)
	}
	return out
}

// TestRateLimitSurvivesRestart: one capture per reason per hour, also
// across a restart of the daemon (a new Capturer on the same directory),
// and other reasons are not held back.
func TestRateLimitSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{now: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)}
	cfg := config.Diagnostics{Dir: dir, Retention: config.Retention{Bundles: 10}}
	newCapturer := func() *Capturer {
		return New(Options{Log: quiet, Now: clk.Now, Collector: NewCollector(fakeCollector(t, writes), quiet)}, cfg)
	}
	ctx := context.Background()
	c := newCapturer()
	c.capture(ctx, trigger{reason: "XFSCorruption", what: "StorageReady=False", node: "node-a"})
	if n := len(bundleNames(t, dir)); n != 1 {
		t.Fatalf("%d bundles after the first capture, want 1", n)
	}
	clk.add(10 * time.Minute)
	c.capture(ctx, trigger{reason: "XFSCorruption", what: "StorageReady=False", node: "node-a"})
	c = newCapturer() // restart
	clk.add(10 * time.Minute)
	c.capture(ctx, trigger{reason: "XFSCorruption", what: "StorageReady=False", node: "node-a"})
	if got := bundleNames(t, dir); len(got) != 1 {
		t.Fatalf("bundles %v: the same reason was captured twice within the hour", got)
	}
	c.capture(ctx, trigger{reason: "KernelBug", what: "KernelReady=False", node: "node-a"})
	if n := len(bundleNames(t, dir)); n != 2 {
		t.Fatalf("%d bundles, want another reason captured at once", n)
	}
	clk.add(41 * time.Minute) // an hour after the first
	c = newCapturer()
	c.capture(ctx, trigger{reason: "XFSCorruption", what: "StorageReady=False", node: "node-a"})
	got := bundleNames(t, dir)
	if len(got) != 3 {
		t.Fatalf("bundles %v, want a new XFSCorruption bundle an hour later", got)
	}
	if want := BundleFile("node-a", "XFSCorruption", clk.Now()); !strings.Contains(strings.Join(got, " "), want) {
		t.Errorf("bundles %v lack %s", got, want)
	}
}

// TestRetentionByCountAndBytes: the oldest bundles go first until both
// bounds hold; a bundle alone over the byte budget goes too; other files
// in the directory stay.
func TestRetentionByCountAndBytes(t *testing.T) {
	dir := t.TempDir()
	base := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	mk := func(i, size int) string {
		name := BundleFile("n", "R"+strconv.Itoa(i), base.Add(time.Duration(i)*time.Minute))
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, base, base.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
		return name
	}
	var names []string
	for i := range 5 {
		names = append(names, mk(i, 100))
	}
	os.WriteFile(filepath.Join(dir, indexFile), []byte("{}"), 0o600)
	os.WriteFile(filepath.Join(dir, "README"), []byte("operator notes"), 0o600)

	removed, err := prune(dir, 3, 1<<20)
	if err != nil || strings.Join(removed, ",") != strings.Join(names[:2], ",") {
		t.Fatalf("count: removed %v (%v), want the two oldest %v", removed, err, names[:2])
	}
	removed, err = prune(dir, 3, 250)
	if err != nil || strings.Join(removed, ",") != names[2] {
		t.Fatalf("bytes: removed %v (%v), want %v", removed, err, names[2])
	}
	big := mk(9, 1000)
	removed, _ = prune(dir, 3, 250)
	if got := bundleNames(t, dir); len(got) != 0 || len(removed) != 3 || removed[2] != big {
		t.Errorf("a bundle over the byte budget: left %v, removed %v", got, removed)
	}
	for _, f := range []string{indexFile, "README"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s removed by retention: %v", f, err)
		}
	}
}

// TestCaptureKeepsRetention: captures through the Capturer leave at most
// the configured number of bundles.
func TestCaptureKeepsRetention(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{now: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)}
	c := New(Options{Log: quiet, Now: clk.Now, Collector: NewCollector(fakeCollector(t, writes), quiet)},
		config.Diagnostics{Dir: dir, Retention: config.Retention{Bundles: 3}})
	for i := range 5 {
		clk.add(time.Second)
		c.capture(context.Background(), trigger{reason: fmt.Sprintf("Reason%d", i), what: "KernelReady=False"})
		// The file times order the bundles; a coarse file system clock
		// must not make them equal.
		bs := bundleNames(t, dir)
		os.Chtimes(filepath.Join(dir, bs[len(bs)-1]), clk.Now(), clk.Now())
	}
	got := bundleNames(t, dir)
	if len(got) != 3 || !strings.Contains(got[0], "Reason2") || !strings.Contains(got[2], "Reason4") {
		t.Fatalf("bundles %v, want the newest three (Reason2..4)", got)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie has ended; only its parent has not reaped it yet.
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func readPid(t *testing.T, p string) int {
	t.Helper()
	var pid int
	waitFor(t, p, func() bool {
		b, err := os.ReadFile(p)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// TestHungCollectorKilledWithItsGroup: a collector that never ends is
// killed at its bound together with the commands it started, and leaves
// no half-written bundle.
func TestHungCollectorKilledWithItsGroup(t *testing.T) {
	work := t.TempDir()
	col := NewCollector(fakeCollector(t, `printf 'half' > "$out"; sleep 1000 & echo $! > `+work+`/grandchild; wait`), quiet)
	out := filepath.Join(work, "b.tar.gz")
	_, err := col.Run(context.Background(), Request{Output: out, CollectTimeout: 300 * time.Millisecond, KillMargin: 300 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Run: %v, want ErrTimeout", err)
	}
	gc := readPid(t, filepath.Join(work, "grandchild"))
	waitFor(t, "the collector's child to be gone", func() bool { return !alive(gc) })
	for _, p := range []string{out, out + ".partial"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind by a killed collection", p)
		}
	}
}

// TestPublishNotDelayedByCapture: while a collection hangs, Publish keeps
// returning (it only queues), also once the queue is full.
func TestPublishNotDelayedByCapture(t *testing.T) {
	work := t.TempDir()
	col := NewCollector(fakeCollector(t, `echo $$ > `+work+`/pid; sleep 1000 & wait`), quiet)
	c := New(Options{Log: quiet, Collector: col}, config.Diagnostics{Dir: filepath.Join(work, "diag")})
	ctx, cancel := context.WithCancel(context.Background())
	c.Start(ctx, nil)
	T, F := condition.True, condition.False
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Publish(publish.Update{Conditions: conds(map[string]string{"KernelReady": T})})
		c.Publish(publish.Update{Conditions: conds(map[string]string{"KernelReady": F})})
		<-started
		for i := range 4 * maxQueued {
			s := T
			if i%2 == 0 {
				s = F
			}
			c.Publish(publish.Update{Conditions: conds(map[string]string{"KernelReady": s})})
		}
	}()
	pid := readPid(t, filepath.Join(work, "pid")) // the capture is running
	close(started)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Publish blocked behind a running capture")
	}
	if !alive(pid) {
		t.Fatal("the capture ended early; the test proves nothing")
	}
	cancel()
	waitFor(t, "the collector to be killed when the daemon stops", func() bool { return !alive(pid) })
}

// TestCollectorLowersPriority: the collector and what it starts run at
// nice 19 in the idle I/O class from the start (the child's first fork
// used to race with lowering its process group after Start), and no
// goroutine of the daemon runs on a lowered thread afterwards.
func TestCollectorLowersPriority(t *testing.T) {
	daemonNice := niceOf(t, "/proc/thread-self/stat")
	work := t.TempDir()
	release := filepath.Join(work, "release")
	col := NewCollector(fakeCollector(t, `sleep 1000 & echo $! > `+work+`/child; while [ ! -e `+release+` ]; do sleep 0.05; done; kill $!; `+writes), quiet)
	// The daemon is slow to lower the priority, as on a loaded node, which
	// is when captures happen: the child must still never run above it.
	col.LowerPriority = func() error { time.Sleep(100 * time.Millisecond); return lowerThread() }
	errc := make(chan error, 1)
	go func() {
		_, err := col.Run(context.Background(), Request{Output: filepath.Join(work, "b.tar.gz")})
		errc <- err
	}()
	child := readPid(t, filepath.Join(work, "child"))
	nice := niceOf(t, fmt.Sprintf("/proc/%d/stat", child))
	os.WriteFile(release, nil, 0o600)
	if nice != "19" {
		t.Errorf("collector's child runs at nice %s, want 19", nice)
	}
	prio, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, 1 /* IOPRIO_WHO_PROCESS */, uintptr(child), 0)
	if e != 0 {
		t.Fatalf("ioprio_get: %v", e)
	}
	if class := prio >> ioprioClassShft; class != ioprioClassIdle {
		t.Errorf("collector's child in I/O class %d, want idle (%d)", class, ioprioClassIdle)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Goroutines that each hold a thread for a while spread over every
	// thread the runtime has and makes more: none may be the lowered one.
	// (A lowered main thread is parked for good by the runtime: it runs
	// no goroutine again, so this cannot see it.)
	var wg sync.WaitGroup
	nices := make([]string, 4*runtime.GOMAXPROCS(0))
	for i := range nices {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			nices[i] = niceOf(t, "/proc/thread-self/stat")
			time.Sleep(20 * time.Millisecond)
		})
	}
	wg.Wait()
	for _, n := range nices {
		if n != daemonNice {
			t.Errorf("a goroutine ran at nice %s after the capture, want the daemon's %s (all: %v)", n, daemonNice, nices)
			break
		}
	}
}

// niceOf reads the nice field of a /proc stat file.
func niceOf(t *testing.T, stat string) string {
	t.Helper()
	b, err := os.ReadFile(stat)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	// Field 19 of stat is nice; rest starts at field 3.
	return strings.Fields(rest)[19-3]
}

// TestCollectorResult: a collection that ends well returns the child's
// result with the final path, and the bundle is there under it.
func TestCollectorResult(t *testing.T) {
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	col := NewCollector(fakeCollector(t, `echo "$args" > `+out+`.args; `+writes), quiet)
	res, err := col.Run(context.Background(), Request{Output: out, Sections: []string{"kernel", "system"}, Upload: "s3://b/p/{node}/", Node: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != out || res.Bytes != 6 || !res.Complete {
		t.Errorf("result %+v", res)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "bundle" {
		t.Errorf("bundle: %q, %v", b, err)
	}
	args, _ := os.ReadFile(out + ".args")
	for _, want := range []string{"collect", "--result json", "--sections kernel,system", "--upload s3://b/p/{node}/", "--node node-a", "--upload-name b.tar.gz"} {
		if !strings.Contains(string(args), want) {
			t.Errorf("collector args %q lack %q", args, want)
		}
	}

	// No result line: an error that quotes the child.
	col = NewCollector(fakeCollector(t, `echo "journalctl: cannot open" >&2; exit 1`), quiet)
	if _, err := col.Run(context.Background(), Request{Output: out}); err == nil || !strings.Contains(err.Error(), "journalctl: cannot open") {
		t.Errorf("failing collector: %v", err)
	}
}

// emitter records what a detector raises.
type emitter struct {
	mu sync.Mutex
	fs []finding.Finding
}

func (e *emitter) Raise(f finding.Finding) { e.mu.Lock(); e.fs = append(e.fs, f); e.mu.Unlock() }
func (e *emitter) Clear(finding.Clear)     {}
func (e *emitter) Observe(policy.Event)    {}
func (e *emitter) found() []finding.Finding {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]finding.Finding(nil), e.fs...)
}

// TestUploadOutcomesBecomeWarnings: the upload's outcome re-enters the
// pipeline through the detector as a Warning finding: success, failure
// reported by the collector, and no bundle at all to upload.
func TestUploadOutcomesBecomeWarnings(t *testing.T) {
	ok := fakeCollector(t, `printf 'bundle' > "$out"; printf '{"path":"%s","bytes":6,"upload":{"url":"s3://b/p/x.tar.gz","attempts":1}}\n' "$out"`)
	denied := fakeCollector(t, `printf 'bundle' > "$out"; printf '{"path":"%s","bytes":6,"upload":{"url":"s3://b/p/y.tar.gz","attempts":3,"error":"AccessDenied: not allowed"}}\n' "$out"; exit 1`)
	broken := fakeCollector(t, `exit 3`)
	dir := t.TempDir()
	cfg := config.Diagnostics{Dir: dir, Upload: config.Upload{S3: "s3://b/p/"}}
	em := &emitter{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c *Capturer
	for i, path := range []string{ok, denied, broken} {
		c2 := New(Options{Log: quiet, Collector: NewCollector(path, quiet)}, cfg)
		if c != nil {
			c2.outcomes = c.outcomes // one stream of outcomes, as in one daemon
		} else {
			go c2.Detector().Run(ctx, em)
		}
		c = c2
		c.capture(ctx, trigger{reason: fmt.Sprintf("Reason%d", i), condition: finding.KernelReady, what: "KernelReady=False"})
	}
	waitFor(t, "three outcomes", func() bool { return len(em.found()) == 3 })
	fs := em.found()
	for i, want := range []struct{ reason, msg string }{
		{ReasonUploaded, "uploaded to s3://b/p/x.tar.gz"},
		{ReasonUploadFailed, "AccessDenied: not allowed"},
		{ReasonUploadFailed, "no bundle to upload"},
	} {
		f := fs[i]
		if f.Reason != want.reason || f.Severity != finding.Warning || !strings.Contains(f.Message, want.msg) ||
			!strings.Contains(f.Message, fmt.Sprintf("Reason%d", i)) || f.Detected.IsZero() {
			t.Errorf("outcome %d: %+v, want %s with %q", i, f, want.reason, want.msg)
		}
	}
	// The bundle of a failed upload stays.
	if got := bundleNames(t, dir); len(got) != 2 {
		t.Errorf("bundles %v, want the two written", got)
	}
}

// TestFindCollector: the configured path, else next to the executable,
// else $PATH.
func TestFindCollector(t *testing.T) {
	if _, err := FindCollector("/nonexistent/nodehealthctl"); err == nil {
		t.Error("a configured collector that does not exist was accepted")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "nodehealthctl")
	os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)
	t.Setenv("PATH", dir)
	if got, err := FindCollector(""); err != nil || got != p {
		t.Errorf("from $PATH: %q, %v", got, err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := FindCollector(""); err == nil {
		t.Error("found a collector where there is none")
	}
}

// On a full disk the rate-limit index cannot be saved: the error says so
// and no partial file is left to keep the disk full (the old code left
// index.json.tmp behind).
func TestIndexSaveOnFullDiskLeavesNothing(t *testing.T) {
	dir := atomicfiletest.SmallDisk(t, "64k")
	atomicfiletest.Fill(t, filepath.Join(dir, "filler"))
	ix := index{Last: map[string]time.Time{"KernelBug": time.Now()}}
	if err := ix.save(dir); err == nil {
		t.Fatal("saved on a full disk")
	}
	atomicfiletest.WantOnly(t, dir, "filler")
}
