// Package crash kills the daemon with SIGKILL at random moments while it
// consumes a generated journal and kmsg stream, and checks that across all
// restarts every expected finding was committed exactly once.
package crash

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/e2e/internal/daemontest"
	"github.com/nodehealthd/nodehealthd/e2e/internal/testbin"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/logging/logtest"
	"github.com/nodehealthd/nodehealthd/internal/source/journal/journaltest"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

const rules = `rules:
  - name: CrashKmsg
    condition: KernelReady
    reason: CrashKmsg
    severity: Warning
    source: kmsg
    patterns: ['crashtest-k-(?P<n>\d+)']
    message: 'k ${n}'
  - name: CrashFatal
    condition: KernelReady
    reason: CrashFatal
    severity: Fatal
    source: kmsg
    patterns: ['crashfatal-(?P<n>\d+)']
    key: '${n}'
    message: 'fatal ${n}'
  - name: CrashJournal
    condition: ContainerRuntimeReady
    reason: CrashJournal
    severity: Warning
    source: journal
    identifiers: [crashapp]
    patterns: ['crashtest-j-(?P<n>\d+)']
    message: 'j ${n}'
  - name: CrashPair
    condition: ContainerRuntimeReady
    reason: CrashPair
    severity: Warning
    source: journal
    identifiers: [crashapp]
    patterns: ['crashpair-(?P<n>\d+)']
    key: '${n}'
    message: 'pair ${n}'
    threshold: {count: 2, window: 1h}
`

// Stream sizes: large enough that the daemon needs many commits, so that
// kills land while it is consuming.
const (
	kmsgRecords    = 100000
	journalEntries = 500000
	kmsgTokens     = 150
	fatalTokens    = 20
	journalTokens  = 150
	pairs          = 50
)

func TestKillNineLosesAndRepeatsNothing(t *testing.T) {
	journaltest.Require(t)
	// Built before the calibration run, which must time the daemon alone.
	testbin.Build(t)
	root := t.TempDir()
	boot := daemontest.WriteBoot(t, root, "0c8b1e0c-3b5c-4a5e-9a3e-000000000001")

	// kmsg: noise with tokens spread through it, in the raw record form.
	var km strings.Builder
	every := kmsgRecords / (kmsgTokens + fatalTokens)
	k, f := 0, 0
	for i := 1; i <= kmsgRecords; i++ {
		msg := fmt.Sprintf("noise record %d from a driver", i)
		if i%every == 0 {
			if k < kmsgTokens {
				msg = fmt.Sprintf("crashtest-k-%d happened", k)
				k++
			} else if f < fatalTokens {
				msg = fmt.Sprintf("crashfatal-%d happened", f)
				f++
			}
		}
		fmt.Fprintf(&km, "6,%d,%d,-;%s\n", i, 1000000+i*10, msg)
	}
	daemontest.Write(t, filepath.Join(root, "dev/kmsg"), km.String())

	// journal: noise and tokens from the matched identifier, plus entries
	// of other identifiers the matches must skip.
	jdir := filepath.Join(root, "var/log/journal")
	if err := os.MkdirAll(jdir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := boot.Add(time.Minute)
	jEvery := journalEntries / (journalTokens + 2*pairs + 1)
	journaltest.WriteJournalFunc(t, jdir, journalEntries, func(i int) journaltest.Entry {
		e := journaltest.Entry{Time: start.Add(time.Duration(i) * time.Millisecond), Identifier: "crashapp", Message: fmt.Sprintf("routine line %d", i)}
		if i%7 == 3 {
			e.Identifier = "other"
		}
		if i%jEvery == 0 && i > 0 {
			n := i/jEvery - 1
			e.Identifier = "crashapp"
			switch {
			case n < journalTokens:
				e.Message = fmt.Sprintf("crashtest-j-%d done", n)
			case n < journalTokens+2*pairs:
				e.Message = fmt.Sprintf("crashpair-%d seen", (n-journalTokens)/2)
			}
		}
		return e
	})

	rulesDir := filepath.Join(root, "rules.d")
	daemontest.Write(t, filepath.Join(rulesDir, "crash.yaml"), rules)
	argsFor := func(stateDir string) []string {
		return []string{"--root", root, "--state-dir", stateDir, "--rules-dir", rulesDir, "--config", testbin.Config(t, filepath.Join(root, "conf"), testbin.NoProbes), "-o", "none"}
	}

	// Calibrate: how long does an uninterrupted run take on this machine?
	// Kill delays are then drawn from a fraction of it, so that kills land
	// mid-stream whether the machine is fast or loaded.
	calDir := filepath.Join(t.TempDir(), "calibrate")
	full := timeFullRun(t, argsFor(calDir), calDir)
	t.Logf("an uninterrupted run takes %v", full.Round(time.Millisecond))
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	// Each run gets at most about an eighth of the streams' work after its
	// start-up, so that several kills land mid-stream before the streams
	// are done. The machine's load may change after the calibration (other
	// test packages run alongside); if too few kills landed mid-stream,
	// start again from an empty state with shorter runs.
	minDelay, window := full/10, full/8
	var stateDir string
	var kills, midStream int
	killed := &logtest.Buffer{}
	killed.LogOnFailure(t, "killed runs")
	for attempt := 1; ; attempt++ {
		stateDir = filepath.Join(t.TempDir(), "state")
		var finished bool
		kills, midStream, finished = killRepeatedly(t, argsFor(stateDir), stateDir, killed, minDelay, window, rng)
		if midStream >= 3 || attempt == 3 {
			break
		}
		if finished {
			// Runs did too much each: shorter ones.
			window /= 2
		} else {
			// Runs were killed before they could commit: longer ones.
			minDelay *= 2
		}
		t.Logf("attempt %d: %d kills, only %d mid-stream (streams finished: %v); again with delays %v + [0, %v)", attempt, kills, midStream, finished, minDelay, window)
	}
	args := argsFor(stateDir)
	// A last run without interruption finishes the streams.
	d := daemontest.Start(t, args, daemontest.Options{})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if done, _ := progress(t, stateDir); done == total() {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.Stop(syscall.SIGTERM)
	t.Logf("%d kills, %d of them after progress and before the end of the streams", kills, midStream)
	if midStream < 3 {
		t.Fatalf("only %d kills landed mid-stream; the test did not exercise crash recovery", midStream)
	}

	st, err := state.Read(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, f := range st.Recent {
		counts[f.Reason+"/"+f.Message]++
	}
	var missing, dup []string
	check := func(reason, msg string) {
		switch counts[reason+"/"+msg] {
		case 1:
		case 0:
			missing = append(missing, reason+"/"+msg)
		default:
			dup = append(dup, fmt.Sprintf("%s/%s×%d", reason, msg, counts[reason+"/"+msg]))
		}
	}
	for i := 0; i < kmsgTokens; i++ {
		check("CrashKmsg", fmt.Sprintf("k %d", i))
	}
	for i := 0; i < fatalTokens; i++ {
		check("CrashFatal", fmt.Sprintf("fatal %d", i))
	}
	for i := 0; i < journalTokens; i++ {
		check("CrashJournal", fmt.Sprintf("j %d", i))
	}
	for i := 0; i < pairs; i++ {
		check("CrashPair", fmt.Sprintf("pair %d", i))
	}
	if len(missing) > 0 || len(dup) > 0 {
		t.Fatalf("missing %d: %v\nduplicated %d: %v", len(missing), missing, len(dup), dup)
	}
	if len(st.Recent) != total() {
		var extra []string
		for _, f := range st.Recent {
			if !strings.HasPrefix(f.Reason, "Crash") {
				extra = append(extra, fmt.Sprintf("%s/%s: %s", f.Condition, f.Reason, f.Message))
			}
		}
		t.Fatalf("%d findings committed, want exactly %d; not from the test streams: %q", len(st.Recent), total(), extra)
	}
	for i := 1; i < len(st.Recent); i++ {
		if st.Recent[i].ID <= st.Recent[i-1].ID {
			t.Fatalf("finding IDs not increasing: %d after %d", st.Recent[i].ID, st.Recent[i-1].ID)
		}
	}
	active := 0
	for _, f := range st.Active {
		if f.Reason == "CrashFatal" && f.Severity == finding.Fatal && f.Count == 1 {
			active++
		}
	}
	if active != fatalTokens {
		t.Fatalf("%d active CrashFatal findings seen once each, want %d", active, fatalTokens)
	}
}

// killRepeatedly starts the daemon on stateDir and SIGKILLs it after
// minDelay plus a random part of window, at least 10 times and until the
// streams are done (at most 30 times). It returns the kills, how many of
// them came after progress and before the end of the streams, and whether
// the streams were done.
func killRepeatedly(t *testing.T, args []string, stateDir string, log *logtest.Buffer, minDelay, window time.Duration, rng *rand.Rand) (kills, midStream int, finished bool) {
	prevPos := ""
	for kills < 30 {
		d := daemontest.Start(t, args, daemontest.Options{Log: log})
		time.Sleep(minDelay + time.Duration(rng.Int64N(int64(window))))
		d.Stop(syscall.SIGKILL)
		kills++
		done, pos := progress(t, stateDir)
		if pos != prevPos && done < total() && pos != "" {
			midStream++
		}
		prevPos = pos
		finished = done == total()
		if finished && kills >= 10 {
			break
		}
	}
	return kills, midStream, finished
}

// timeFullRun runs the daemon until it has committed every test finding
// and returns how long that took.
func timeFullRun(t *testing.T, args []string, stateDir string) time.Duration {
	t.Helper()
	start := time.Now()
	d := daemontest.Start(t, args, daemontest.Options{})
	defer d.Stop(syscall.SIGTERM)
	d.Eventually(t, 2*time.Minute, "the calibration run commits every test finding", func() (bool, string) {
		done, _ := progress(t, stateDir)
		return done == total(), fmt.Sprintf("%d of %d", done, total())
	})
	return time.Since(start)
}

func total() int { return kmsgTokens + fatalTokens + journalTokens + pairs }

// progress is how many test findings the committed state holds, and its
// source positions.
func progress(t *testing.T, dir string) (int, string) {
	st, err := state.Read(dir)
	if err != nil {
		return 0, ""
	}
	n := 0
	for _, f := range st.Recent {
		if strings.HasPrefix(f.Reason, "Crash") {
			n++
		}
	}
	return n, fmt.Sprint(st.Positions["kmsg"].Seq, st.Positions["journal"].Cursor)
}
