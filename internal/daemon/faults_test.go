package daemon

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/logging/logtest"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/publish/console"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// recorder keeps what the publishers were told.
type recorder struct {
	mu       sync.Mutex
	updates  int
	failures int
	unsaved  *state.SaveFailure
	findings []finding.Finding
	cleared  []state.Cleared
	conds    map[string]string
}

func (r *recorder) Publish(u publish.Update) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates++
	r.failures += u.Stats.SaveFailures
	r.unsaved = u.Unsaved
	r.findings = append(r.findings, u.New...)
	r.cleared = append(r.cleared, u.Cleared...)
	r.conds = map[string]string{}
	for t, c := range u.Conditions {
		r.conds[t] = c.Status + "/" + c.Reason
	}
}

// wait polls cond under the recorder's lock.
func (r *recorder) wait(h *harness, what string, cond func(r *recorder) bool) {
	h.t.Helper()
	h.eventually(15*time.Second, "publishers see "+what, func() (bool, string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return cond(r), "not seen"
	})
}

func (r *recorder) published(reason string) bool {
	for _, f := range r.findings {
		if f.Reason == reason {
			return true
		}
	}
	return false
}

func faultHarness(t *testing.T) (*harness, *recorder, *logtest.Buffer) {
	h := newHarness(t)
	rec, out := &recorder{}, &logtest.Buffer{}
	h.pubs = []publish.Publisher{rec, console.New(out, false)}
	h.housekeeping = 50 * time.Millisecond
	return h, rec, out
}

func waitFor(t *testing.T, what string, h *harness, cond func() bool) {
	t.Helper()
	h.eventually(15*time.Second, what, func() (bool, string) { return cond(), "not yet" })
}

// A state directory that cannot be created must not stop detection or
// publishing; once it can be written, the file holds everything found
// meanwhile.
func TestUnwritableStateDirKeepsDetectingAndPublishing(t *testing.T) {
	h, rec, out := faultHarness(t)
	blocker := filepath.Join(t.TempDir(), "blocker")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.stateDir = filepath.Join(blocker, "state") // below a regular file: ENOTDIR
	h.run()
	defer h.stop()
	h.send("boom sda")
	rec.wait(h, "the finding, the condition and the save failure", func(r *recorder) bool {
		return r.published("Boom") && r.published(state.ReasonNotPersisted) && r.conds[finding.KernelReady] == "False/Boom" &&
			r.unsaved != nil && r.unsaved.Failures >= 2 && r.failures >= 2
	})
	for _, want := range []string{"KernelReady/Boom: boom on sda", "KernelReady=False Boom", "StorageReady/StateNotPersisted"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console output lacks %q:\n%s", want, out.String())
		}
	}
	if n := strings.Count(h.logs.String(), "cannot write the state file"); n != 1 {
		t.Errorf("the save failure was logged %d times, want once per episode:\n%s", n, h.logs.String())
	}

	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	st := h.waitState(func(st *state.State) bool { return st.LastSaveFailure != nil })
	if activeReasons(st) != "Boom/sda" || st.LastSaveFailure.Until.IsZero() || st.LastSaveFailure.Failures < 2 {
		t.Fatalf("state written after recovery: active %s, episode %+v", activeReasons(st), st.LastSaveFailure)
	}
	seen := false
	for _, f := range st.Recent {
		seen = seen || f.Reason == state.ReasonNotPersisted
	}
	if !seen {
		t.Error("the warning published while unsaved is missing from the state written afterwards")
	}
	rec.wait(h, "the end of the episode", func(r *recorder) bool { return r.unsaved == nil })
	if !strings.Contains(h.logs.String(), "state file written again") {
		t.Errorf("recovery not logged:\n%s", h.logs.String())
	}
}

// A read-only state directory (here a real read-only bind mount) is a
// read-only filesystem the cluster must hear about: StorageReady goes
// False with FilesystemReadOnly, and clears when the file can be written.
func TestReadOnlyStateDirRaisesFilesystemReadOnly(t *testing.T) {
	h, rec, _ := faultHarness(t)
	h.start()
	h.raiseBoom()
	h.stop()
	// mount(8) carries the mount's locked flags (relatime and the like)
	// into the read-only remount, which a bare mount(2) would have to copy.
	if out, err := exec.Command("mount", "--bind", "-o", "ro", h.stateDir, h.stateDir).CombinedOutput(); err != nil {
		t.Skipf("cannot bind-mount read-only (needs root): %v: %s", err, out)
	}
	mounted := true
	unmount := func() {
		if mounted {
			// Lazily: the running daemon holds its lock file open.
			if err := syscall.Unmount(h.stateDir, syscall.MNT_DETACH); err != nil {
				t.Fatal(err)
			}
			mounted = false
		}
	}
	defer unmount()

	h.run() // read-only from the start
	defer h.stop()
	h.send("boom sdb")
	rec.wait(h, "FilesystemReadOnly on StorageReady and the new finding", func(r *recorder) bool {
		return r.published("Boom") && r.conds[finding.StorageReady] == "False/FilesystemReadOnly" && r.unsaved != nil
	})
	rec.mu.Lock()
	for _, f := range rec.findings {
		if f.Reason == reasonReadOnly && (f.Severity != finding.Fatal || f.Key != h.stateDir) {
			t.Errorf("FilesystemReadOnly finding: %+v", f)
		}
	}
	rec.mu.Unlock()

	unmount()
	st := h.waitActive("Boom/sda,Boom/sdb")
	if c := st.Conditions[finding.StorageReady]; c.Status != "True" {
		t.Errorf("StorageReady after the directory became writable: %+v", c)
	}
}

// blockSaves makes every state save fail (a directory where the file is
// renamed to) while the state directory itself stays usable.
func blockSaves(t *testing.T, dir string) (unblock func()) {
	t.Helper()
	p := filepath.Join(dir, state.FileName)
	for i := 0; ; i++ {
		_ = os.Remove(p)
		if err := os.Mkdir(p, 0o700); err == nil {
			break
		} else if i > 100 {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(p, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
}

// nodehealthctl clear waits for its request file to vanish: the daemon may
// only remove it once a save that includes the clear succeeded.
func TestClearStaysQueuedUntilSaved(t *testing.T) {
	h, rec, out := faultHarness(t)
	h.start()
	defer h.stop()
	h.raiseBoom()
	unblock := blockSaves(t, h.stateDir)
	path, err := state.SubmitRequest(h.stateDir, state.Request{Clear: &finding.Clear{Reason: "Boom", AllKeys: true, By: "operator"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rec.wait(h, "the clear", func(r *recorder) bool { return len(r.cleared) == 1 && r.unsaved != nil })
	if !strings.Contains(out.String(), "cleared KernelReady/Boom") {
		t.Errorf("the clear was not printed:\n%s", out.String())
	}
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("request removed while the state that applied it was not saved: %v\n%s", err, h.logs.String())
		}
	}
	unblock()
	st := h.waitState(func(st *state.State) bool { return len(st.Active) == 0 })
	waitFor(t, "the request to be removed", h, func() bool { _, err := os.Stat(path); return errors.Is(err, os.ErrNotExist) })
	if st.Cleared[len(st.Cleared)-1].By != "operator" {
		t.Errorf("cleared: %+v", st.Cleared)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.cleared) != 1 {
		t.Errorf("the clear was applied %d times", len(rec.cleared))
	}
}

func writeRequest(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, "requests", name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Only root's (or the daemon's own user's) requests are applied; a file
// still being written by a careless writer is not thrown away.
func TestRequestFilesAreCheckedBeforeUse(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a file owned by another user")
	}
	h, _, _ := faultHarness(t)
	h.start()
	defer h.stop()
	h.raiseBoom()
	clear := `{"clear":{"reason":"Boom","allKeys":true,"by":"operator"}}`

	// Owned by another user before it appears in requests/: written as
	// root and chowned in place, housekeeping could apply it in between.
	staged := filepath.Join(h.stateDir, "staged-request")
	if err := os.WriteFile(staged, []byte(clear), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(staged, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(h.stateDir, "requests", "1-1.json")
	if err := os.Rename(staged, foreign); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the foreign request to be refused", h, func() bool { return strings.Contains(h.logs.String(), "only root's requests are applied") })
	waitFor(t, "the foreign request to be removed", h, func() bool { _, err := os.Stat(foreign); return err != nil })

	partial := writeRequest(t, h.stateDir, "2-1.json", clear[:20])
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(partial); err != nil {
			t.Fatalf("a request being written was removed: %v\n%s", err, h.logs.String())
		}
	}
	if st, err := state.Read(h.stateDir); err != nil {
		t.Fatal(err)
	} else if activeReasons(st) != "Boom/sda" {
		t.Fatalf("active after a refused request: %q\n%s", activeReasons(st), h.logs.String())
	}
	writeRequest(t, h.stateDir, "2-1.json", clear)
	h.waitState(func(st *state.State) bool { return len(st.Active) == 0 })
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// Loose modes are tightened at start and temporary files of interrupted
// writes removed (a crash loop must not fill /var with them).
func TestStartTightensModesAndRemovesStaleTemps(t *testing.T) {
	h, _, _ := faultHarness(t)
	req := filepath.Join(h.stateDir, "requests")
	if err := os.MkdirAll(req, 0o777); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	var stale []string
	for _, p := range []string{filepath.Join(h.stateDir, ".state.json.tmp-1"), filepath.Join(h.stateDir, ".state.json.tmp-2"), filepath.Join(req, ".1-1.json.tmp-3")} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		stale = append(stale, p)
	}
	if err := os.Chtimes(stale[2], old, old); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(req, ".2-1.json.tmp-4") // a nodehealthctl writing now
	if err := os.WriteFile(fresh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{h.stateDir, req} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	h.start()
	defer h.stop()
	for _, p := range stale {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("stale temporary file %s kept", p)
		}
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh request temp file was removed: %v", err)
	}
	for p, want := range map[string]os.FileMode{h.stateDir: 0o750, req: 0o750, filepath.Join(h.stateDir, state.FileName): 0o640} {
		if got := mode(t, p); got != want {
			t.Errorf("mode of %s = %o, want %o", p, got, want)
		}
	}
}

// Deleting the state directory must neither let a second daemon take over
// nor leave the first without a state file.
func TestDeletedStateDirIsRecreatedAndStaysLocked(t *testing.T) {
	h, _, _ := faultHarness(t)
	h.start()
	defer h.stop()
	h.raiseBoom()
	// Like rm -rf, which may meet a file the daemon is writing that
	// moment ("directory not empty") and is then run again.
	for i := 0; ; i++ {
		err := os.RemoveAll(h.stateDir)
		if err == nil {
			break
		}
		if i == 50 {
			t.Fatal(err)
		}
	}
	h.waitActive("Boom/sda")
	if _, _, err := state.Open(h.stateDir, "boot-1", time.Now(), slog.New(slog.DiscardHandler)); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("a second daemon could open the recreated directory: %v", err)
	}
	h.send("boom sdb")
	h.waitActive("Boom/sda,Boom/sdb")
}

// The journal and console output are at-least-once: what was committed but
// not yet written when the daemon stopped is written at the next start,
// marked as a replay; a clean stop replays nothing.
func TestLogPublishersReplayWhatAStopKeptFromThem(t *testing.T) {
	h, _, out := faultHarness(t)
	h.start()
	h.raiseBoom()
	h.stop()

	out2 := &logtest.Buffer{}
	h.pubs = []publish.Publisher{console.New(out2, true)}
	h.start()
	h.stop()
	if strings.Contains(out2.String(), "replay") {
		t.Fatalf("a clean stop replayed:\n%s", out2.String())
	}

	// As if killed after the commit and before the finding was written.
	p := filepath.Join(h.stateDir, state.FileName)
	st, err := state.Read(h.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	st.Logged = &state.LogMark{}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
	out3 := &logtest.Buffer{}
	h.pubs = []publish.Publisher{console.New(out3, true)}
	h.start()
	h.stop()
	var line console.Line
	if err := json.Unmarshal([]byte(strings.SplitN(out3.String(), "\n", 2)[0]), &line); err != nil || !line.Replay || line.Reason != "Boom" {
		t.Fatalf("replayed output %q (%v); first run printed:\n%s", out3.String(), err, out.String())
	}
	if st, _ := state.Read(h.stateDir); st.Logged == nil || st.Logged.Finding != st.NextID {
		t.Fatalf("log mark after replay: %+v (next ID %d)", st.Logged, st.NextID)
	}
}
