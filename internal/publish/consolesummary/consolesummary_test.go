package consolesummary

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/atomicfile/atomicfiletest"
	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

var t0 = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// newWriter writes to console, a file standing in for the device (which
// the writer never creates).
func newWriter(t *testing.T, console, dir string, clk *clock) *Writer {
	if f, err := os.OpenFile(console, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		f.Close()
	}
	w := New(Options{Path: console, Now: clk.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	w.Configure(true, dir)
	return w
}

// start makes a writer in a new directory whose console is a file there.
func start(t *testing.T) (w *Writer, console, work string, clk *clock) {
	work = t.TempDir()
	console = filepath.Join(work, "console")
	clk = &clock{now: t0}
	return newWriter(t, console, work, clk), console, work, clk
}

// summarise publishes update(boot, msg, kernelFalse) and has w take its
// next step, whose result it returns.
func summarise(w *Writer, boot, msg string, kernelFalse bool) time.Duration {
	w.Publish(update(boot, msg, kernelFalse))
	return w.step()
}

// update is a committed state with KernelReady False for a finding whose
// message is msg, and kernel errors among the recent findings.
func update(boot, msg string, kernelFalse bool) publish.Update {
	st := state.New(boot, t0)
	st.Cluster = &state.ClusterLink{Node: "node-a"}
	var ch state.Changes
	st.Raise(finding.Finding{Condition: finding.KernelReady, Reason: "KernelBug", Severity: finding.Fatal, Message: msg,
		Source: "kmsg", Detected: t0, LastSeen: t0, Count: 2}, false, &ch)
	st.Raise(finding.Finding{Condition: finding.KernelReady, Reason: "AppCrash", Severity: finding.Warning, Message: "segfault in app",
		Source: "kmsg", Detected: t0, LastSeen: t0, Count: 1}, false, &ch)
	st.Raise(finding.Finding{Condition: finding.ContainerRuntimeReady, Reason: "PodStuck", Severity: finding.Warning, Message: "from the journal",
		Source: "journal", Detected: t0, LastSeen: t0, Count: 1}, false, &ch)
	if !kernelFalse {
		st.Active = nil
	}
	st.UpdateConditions([]string{finding.KernelReady, finding.StorageReady, finding.NetworkingReady}, "", t0)
	return publish.Update{Time: t0, Conditions: st.Conditions, ConditionsChanged: true, State: st}
}

func read(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// TestSummaryContent: conditions, active findings and kernel errors, each
// line marked, within one summary's bound.
func TestSummaryContent(t *testing.T) {
	w, console, _, _ := start(t)
	summarise(w, "boot-1", "BUG: unable to handle page fault", true)
	out := read(t, console)
	for _, want := range []string{
		"node-a 2026-07-01T12:00:00Z: node health summary",
		"KernelReady=False KernelBug since 2026-07-01T12:00:00Z",
		"True: NetworkingReady StorageReady",
		"active KernelReady/KernelBug x2 since 12:00:00Z: BUG: unable to handle page fault",
		"kernel 12:00:00Z AppCrash: segfault in app",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "from the journal") {
		t.Errorf("a journal finding listed as a kernel error:\n%s", out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, prefix) {
			t.Errorf("line without the prefix: %q", l)
		}
	}

	// A flood of findings still fits one summary's bound.
	u := update("boot-1", strings.Repeat("x", 400), true)
	for i := range 100 {
		f := u.State.Active[0]
		f.Key, f.Message = fmt.Sprint(i), strings.Repeat("y", 500)
		u.State.Active = append(u.State.Active, f)
	}
	header, body := render(&snapshot{conditions: []condition.Condition{u.Conditions[finding.KernelReady]}, active: u.State.Active[:maxActive], activeTotal: len(u.State.Active), anyFalse: true}, t0, DefaultMaxSummary)
	if n := len(header + body); n > DefaultMaxSummary {
		t.Errorf("summary of %d bytes, bound %d", n, DefaultMaxSummary)
	}
	if !strings.Contains(body, "more") {
		t.Errorf("summary does not say what it left out:\n%s", body)
	}
}

// TestAtMostEveryInterval: a change within the interval waits for it.
func TestAtMostEveryInterval(t *testing.T) {
	w, console, _, clk := start(t)
	summarise(w, "boot-1", "first", true)
	clk.now = t0.Add(time.Minute)
	if next := summarise(w, "boot-1", "second", true); next != 4*time.Minute {
		t.Errorf("next look in %s, want 4m", next)
	}
	if out := read(t, console); strings.Contains(out, "second") {
		t.Fatalf("a second summary a minute after the first:\n%s", out)
	}
	clk.now = t0.Add(DefaultInterval)
	w.step()
	if out := read(t, console); !strings.Contains(out, "second") {
		t.Fatalf("no summary after the interval:\n%s", out)
	}
}

// TestBudgetPerBoot: all summaries of a boot, across restarts of the
// daemon, stay within the budget, the last line says it was spent, and a
// new boot starts a new budget.
func TestBudgetPerBoot(t *testing.T) {
	w, console, work, clk := start(t)
	for i := range 200 {
		if i == 50 {
			w = newWriter(t, console, work, clk) // a restart
		}
		summarise(w, "boot-1", fmt.Sprintf("problem %d %s", i, strings.Repeat("z", 300)), true)
		clk.now = clk.now.Add(DefaultInterval)
	}
	out := read(t, console)
	if len(out) > DefaultBudget {
		t.Fatalf("%d bytes written this boot, budget %d", len(out), DefaultBudget)
	}
	if len(out) < DefaultBudget/2 {
		t.Fatalf("only %d bytes written: the budget was not used", len(out))
	}
	if n := strings.Count(out, "budget for this boot spent"); n != 1 || !strings.HasSuffix(out, "on the node\n") {
		t.Fatalf("the spent notice appears %d times, and last: %v", n, strings.HasSuffix(out, "on the node\n"))
	}
	w = newWriter(t, console, work, clk)
	summarise(w, "boot-1", "after another restart", true)
	if after := read(t, console); after != out {
		t.Fatal("a restart in the same boot wrote past the budget")
	}
	summarise(w, "boot-2", "next boot", true)
	if after := read(t, console); !strings.Contains(after[len(out):], "next boot") {
		t.Fatal("a new boot did not get a new budget")
	}
}

// TestQuietUnlessFalseOrOff: nothing is written while every condition is
// True, nor with the summary switched off, and an unchanged summary is
// not repeated every interval.
func TestQuietUnlessFalseOrOff(t *testing.T) {
	w, console, work, clk := start(t)
	summarise(w, "boot-1", "", false)
	if out := read(t, console); out != "" {
		t.Fatalf("written while all conditions are True:\n%s", out)
	}
	w.Configure(false, work)
	summarise(w, "boot-1", "off", true)
	if out := read(t, console); out != "" {
		t.Fatalf("written while off:\n%s", out)
	}
	w.Configure(true, work)
	summarise(w, "boot-1", "same", true)
	first := read(t, console)
	clk.now = t0.Add(DefaultInterval)
	w.step()
	if out := read(t, console); out != first {
		t.Fatalf("an unchanged summary repeated after one interval")
	}
	clk.now = t0.Add(repeatAfter)
	w.step()
	if out := read(t, console); len(out) <= len(first) {
		t.Fatalf("an unchanged summary not repeated after %s", repeatAfter)
	}
}

// TestRunWritesInBackground: the goroutine started by Start writes after
// a Publish; a console that cannot be opened is counted, not fatal. In a
// synctest bubble, synctest.Wait says when the writer is done: no polling.
func TestRunWritesInBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, console, work, _ := start(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w.Start(ctx, nil)
		w.Publish(update("boot-1", "in the background", true))
		// Every goroutine of the bubble waits: the writer has written.
		synctest.Wait()
		if !strings.Contains(read(t, console), "in the background") {
			t.Fatal("no summary written by the writer goroutine")
		}
		bad := newWriter(t, filepath.Join(work, "no", "such", "console"), t.TempDir(), &clock{now: t0})
		summarise(bad, "boot-1", "x", true)
		if !bad.failing {
			t.Error("an unwritable console was not noticed")
		}
	})
}

// On a full disk the summary is still written to the console, and saving
// the budget leaves no partial file behind to keep the disk full (the old
// code left console-budget.json.tmp on every failed save).
func TestFullDiskStillSummarisesAndLeavesNothing(t *testing.T) {
	dir := atomicfiletest.SmallDisk(t, "64k")
	atomicfiletest.Fill(t, filepath.Join(dir, "filler"))
	console := filepath.Join(t.TempDir(), "console")
	w := newWriter(t, console, dir, &clock{now: t0})
	summarise(w, "boot-1", "disk full", true)
	if !strings.Contains(read(t, console), "disk full") {
		t.Error("nothing written to the console on a full disk")
	}
	atomicfiletest.WantOnly(t, dir, "filler")
}
