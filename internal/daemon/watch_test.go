package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/nodehealthd/nodehealthd/internal/logging/logtest"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

var movedRule = "rules:\n" + kmsgRule("Moved", "Fatal", "moved rule fired")

// config.yaml moving rulesDir moves the watch with it: a rule file added to
// the new directory is live without SIGHUP, whether the directory existed
// when config.yaml named it or was created afterwards.
func TestRulesDirMoveIsFollowed(t *testing.T) {
	for _, exists := range []bool{true, false} {
		t.Run(map[bool]string{true: "existing", false: "created later"}[exists], func(t *testing.T) {
			h := newHarness(t)
			h.rulesDir = "" // from config.yaml, not from the flag
			h.write("config.yaml", "rulesDir: "+filepath.Join(h.root, "rules.d")+"\n")
			h.start()
			defer h.stop()
			moved := filepath.Join(h.root, "elsewhere", "rules")
			if exists {
				if err := os.MkdirAll(moved, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			h.write("config.yaml", "rulesDir: "+moved+"\n")
			waitFor(t, "the reload after the config change", h, func() bool {
				return strings.Contains(h.logs.String(), "rules reloaded")
			})
			time.Sleep(2 * reloadDebounce)
			h.write("elsewhere/rules/moved.yaml", movedRule)
			deadline := time.Now().Add(5 * time.Second)
			for {
				h.send("moved rule fired")
				st, err := state.Read(h.stateDir)
				if err == nil && activeReasons(st) == "Moved/" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the rule in the new rules directory is not live after 5s:\n%s", h.logs.String())
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}

// A Warning seen again within the coalescing window is committed when the
// window ends, whatever the housekeeping interval: a node whose daemon
// ticks every minute must not hold a repeat (and its event count) that
// long.
func TestCoalescedRepeatCommittedWhenItsWindowEnds(t *testing.T) {
	h := newHarness(t)
	h.write("rules.d/warn.yaml", "rules:\n"+kmsgRule("Blip", "Warning", "blip"))
	h.housekeeping = time.Minute
	h.start()
	defer h.stop()
	blips := func(st *state.State) int {
		n := 0
		for _, f := range st.Recent {
			if f.Reason == "Blip" {
				n += max(1, f.Count)
			}
		}
		return n
	}
	h.send("blip")
	h.waitState(func(st *state.State) bool { return blips(st) == 1 })
	sent := time.Now()
	h.send("blip")
	deadline := sent.Add(state.CoalesceWindow + 5*time.Second)
	for {
		st, err := state.Read(h.stateDir)
		if err == nil && blips(st) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the repeat was not committed within the coalescing window (%v) and 5s", state.CoalesceWindow)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A directory that cannot be watched for a reason other than not existing
// yet (the inotify watch limit; here a closed watcher) is logged, once
// however often follow retries it: config changes then need SIGHUP, and the
// operator must be told. A directory that does not exist yet is expected
// and logs nothing.
func TestWatchFailureIsLoggedOnce(t *testing.T) {
	logs := &logtest.Buffer{}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Skip("no inotify:", err)
	}
	fw := &fileWatch{w: w, watched: map[string]bool{}, refused: map[string]bool{}, log: slog.New(slog.NewTextHandler(logs, nil))}
	missing, dir := filepath.Join(t.TempDir(), "missing"), t.TempDir()
	fw.follow([]string{missing})
	if n := logs.Count("cannot watch"); n != 0 {
		t.Fatalf("a directory that does not exist yet was logged:\n%s", logs)
	}
	_ = w.Close()
	fw.follow([]string{dir})
	fw.follow([]string{dir})
	if n := logs.Count("cannot watch"); n != 1 {
		t.Fatalf("a refused watch logged %d times, want once:\n%s", n, logs)
	}
}
