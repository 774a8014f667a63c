package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/logging/logtest"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/source"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// feed is a source whose records the test pushes.
type feed struct{ ch chan source.Batch }

func (f *feed) Name() string { return "kmsg" }
func (f *feed) Run(ctx context.Context, _ map[string]source.Position, out chan<- source.Batch) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-f.ch:
			select {
			case out <- b:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

type harness struct {
	t        *testing.T
	root     string
	stateDir string
	rulesDir string
	config   string
	feed     *feed
	seq      uint64
	logs     *logtest.Buffer
	cancel   context.CancelFunc
	done     chan error
	// pubs and housekeeping are passed to the daemon when set.
	pubs         []publish.Publisher
	housekeeping time.Duration
}

// kmsgRule is a rules.d entry for a rule that raises its own name as the
// reason on KernelReady for the kmsg lines matching pattern.
func kmsgRule(name, severity, pattern string) string {
	return fmt.Sprintf("  - {name: %s, condition: KernelReady, reason: %[1]s, severity: %s, source: kmsg, patterns: ['%s']}\n", name, severity, pattern)
}

const testRules = `rules:
  - name: Boom
    condition: KernelReady
    reason: Boom
    severity: Fatal
    source: kmsg
    patterns: ['boom (?P<dev>\w+)']
    key: '${dev}'
    message: 'boom on ${dev}'
  - name: Fizz
    condition: StorageReady
    reason: Fizz
    severity: Fatal
    source: kmsg
    patterns: ['fizz']
    recovery: {expireAfter: 1500ms}
`

func newHarness(t *testing.T) *harness {
	root := t.TempDir()
	h := &harness{t: t, root: root, stateDir: filepath.Join(t.TempDir(), "state"), rulesDir: filepath.Join(root, "rules.d"), config: filepath.Join(root, "config.yaml"), feed: &feed{ch: make(chan source.Batch)}}
	h.write("proc/stat", "btime 1700000000\n")
	h.write("proc/sys/kernel/random/boot_id", "boot-1\n")
	h.write("rules.d/test.yaml", testRules)
	return h
}

func (h *harness) write(rel, content string) {
	h.t.Helper()
	p := filepath.Join(h.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) start() {
	h.t.Helper()
	h.run()
	h.waitState(func(st *state.State) bool { return true })
}

// run starts the daemon without waiting for its state file; adjust, when
// given, changes the harness's options first.
func (h *harness) run(adjust ...func(*Options)) {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done, h.logs = cancel, make(chan error, 1), &logtest.Buffer{}
	opts := Options{Root: h.root, StateDir: h.stateDir, ConfigPath: h.config, RulesDir: h.rulesDir,
		Logger:     slog.New(slog.NewTextHandler(h.logs, nil)),
		NewSources: func(SourceContext) []source.Source { return []source.Source{h.feed} },
		Publishers: h.pubs, HousekeepingInterval: h.housekeeping}
	for _, f := range adjust {
		f(&opts)
	}
	go func() { h.done <- Run(ctx, opts) }()
}

func (h *harness) stop() {
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) send(msgs ...string) {
	var recs []source.Record
	for _, m := range msgs {
		h.seq++
		recs = append(recs, source.Record{Kind: source.KindKmsg, Message: m, Seq: h.seq, Time: time.Now()})
	}
	h.feed.ch <- source.Batch{Source: "kmsg", Records: recs, Position: source.Position{BootID: "boot-1", Seq: h.seq}}
}

// eventually polls cond until it holds; when d passes first, the test
// fails with what, the last reason cond gave and the daemon's log.
func (h *harness) eventually(d time.Duration, what string, cond func() (bool, string)) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not within %v (last: %s)\nlogs:\n%s", what, d, last, h.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) waitState(cond func(*state.State) bool) *state.State {
	h.t.Helper()
	var st *state.State
	h.eventually(10*time.Second, "state reaches the expected condition", func() (bool, string) {
		var err error
		st, err = state.Read(h.stateDir)
		return err == nil && cond(st), fmt.Sprintf("read err %v", err)
	})
	return st
}

// waitActive waits until the active findings are want (activeReasons).
func (h *harness) waitActive(want string) *state.State {
	h.t.Helper()
	return h.waitState(func(st *state.State) bool { return activeReasons(st) == want })
}

// raiseBoom has the daemon raise the Boom/sda finding and waits until it is
// active.
func (h *harness) raiseBoom() *state.State {
	h.t.Helper()
	h.send("boom sda")
	return h.waitActive("Boom/sda")
}

func activeReasons(st *state.State) string {
	var rs []string
	for _, f := range st.Active {
		rs = append(rs, f.Reason+"/"+f.Key)
	}
	return strings.Join(rs, ",")
}

func TestRestartKeepsFindingsAndTransitionTimeRebootClears(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.send("boom sda", "nothing here", "boom sda") // the repeat is the same finding
	st := h.waitState(func(st *state.State) bool { return activeReasons(st) == "Boom/sda" && st.Positions["kmsg"].Seq == 3 })
	ltt := st.Conditions[finding.KernelReady].LastTransitionTime
	if st.Conditions[finding.KernelReady].Status != "False" || st.Active[0].Count != 2 || len(st.Recent) != 1 {
		t.Fatalf("after detection: %+v active %+v", st.Conditions[finding.KernelReady], st.Active)
	}
	h.stop()

	time.Sleep(20 * time.Millisecond)
	h.start() // same boot: nothing clears, nothing is re-stamped
	h.send("boom sdb")
	st = h.waitActive("Boom/sda,Boom/sdb")
	c := st.Conditions[finding.KernelReady]
	if !c.LastTransitionTime.Equal(ltt) || c.Reason != "Boom" || !strings.Contains(c.Message, "boom on sda") || !strings.Contains(c.Message, "boom on sdb") {
		t.Fatalf("after restart: %+v (ltt was %v)", c, ltt)
	}
	h.stop()

	h.write("proc/sys/kernel/random/boot_id", "boot-2\n")
	h.start()
	st = h.waitState(func(st *state.State) bool { return len(st.Active) == 0 })
	if st.Conditions[finding.KernelReady].Status != "True" || st.Conditions[finding.KernelReady].Reason != "KernelIsReady" || st.BootID != "boot-2" {
		t.Fatalf("after reboot: %+v", st.Conditions[finding.KernelReady])
	}
	if len(st.Cleared) != 2 || st.Cleared[0].By != "reboot" {
		t.Fatalf("cleared: %+v", st.Cleared)
	}
	h.stop()
}

func TestExpiryAndOperatorClear(t *testing.T) {
	h := newHarness(t)
	// Expiry is checked at housekeeping.
	h.write("config.yaml", "housekeepingInterval: 1s\n")
	h.start()
	defer h.stop()
	h.send("fizz", "boom nvme0")
	h.waitState(func(st *state.State) bool { return st.Conditions[finding.StorageReady].Status == "False" })
	st := h.waitState(func(st *state.State) bool { return st.Conditions[finding.StorageReady].Status == "True" })
	if activeReasons(st) != "Boom/nvme0" || st.Cleared[len(st.Cleared)-1].By != "expiry" {
		t.Fatalf("expiry: active %s cleared %+v", activeReasons(st), st.Cleared)
	}
	if _, err := state.SubmitRequest(h.stateDir, state.Request{Clear: &finding.Clear{Reason: "Boom", AllKeys: true, By: "operator"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	h.waitState(func(st *state.State) bool {
		return len(st.Active) == 0 && st.Conditions[finding.KernelReady].Status == "True"
	})
}

func TestInvalidReloadKeepsLastGoodRules(t *testing.T) {
	h := newHarness(t)
	h.start()
	defer h.stop()
	// A syntax error in one file does not hide another file's problems:
	// one log entry names both.
	h.write("rules.d/a.yaml", "rules:\n  - name: A\n   reason: A\n")
	h.write("rules.d/test.yaml", "rules:\n  - name: Broken\n    condition: NotACondition\n")
	h.eventually(5*time.Second, "a reload error naming both files' problems logged", func() (bool, string) {
		return slices.ContainsFunc(strings.Split(h.logs.String(), "\n"), func(l string) bool {
			return strings.Contains(l, "keeping the last good set") && strings.Contains(l, "a.yaml:1: yaml:") && strings.Contains(l, `test.yaml:2: rule \"Broken\"`)
		}), "not logged"
	})
	h.send("boom sdc")
	h.waitActive("Boom/sdc")
}

func TestDisabledConditionIsRemoved(t *testing.T) {
	h := newHarness(t)
	h.start()
	defer h.stop()
	h.waitState(func(st *state.State) bool { _, ok := st.Conditions[finding.StorageReady]; return ok })
	h.write("config.yaml", "conditions:\n  StorageReady: {enabled: false}\n")
	st := h.waitState(func(st *state.State) bool { _, ok := st.Conditions[finding.StorageReady]; return !ok })
	if _, ok := st.Conditions[finding.AcceleratedHardwareReady]; ok {
		t.Fatal("AcceleratedHardwareReady on a node without accelerators")
	}
	if _, ok := st.Conditions[finding.KernelReady]; !ok {
		t.Fatal("KernelReady missing")
	}
}

func TestCorruptStateIsMovedAside(t *testing.T) {
	h := newHarness(t)
	if err := os.MkdirAll(h.stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.stateDir, state.FileName), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.start()
	defer h.stop()
	h.send("boom sdd")
	h.waitActive("Boom/sdd")
	aside, _ := filepath.Glob(filepath.Join(h.stateDir, state.FileName+".corrupt-*"))
	if len(aside) != 1 || !strings.Contains(h.logs.String(), "moved aside") {
		t.Fatalf("corrupt file not moved aside: %v\n%s", aside, h.logs.String())
	}
}

// statsRecorder adds up the Stats of every update it is given.
type statsRecorder struct {
	mu        sync.Mutex
	truncated map[string]uint64
}

func (s *statsRecorder) Publish(u publish.Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for src, n := range u.Stats.Truncated {
		s.truncated[src] += n
	}
}

func (s *statsRecorder) get(src string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.truncated[src]
}

// A source's count of cut records reaches the publishers (the metrics).
func TestTruncatedCountReachesPublishers(t *testing.T) {
	h := newHarness(t)
	rec := &statsRecorder{truncated: map[string]uint64{}}
	h.pubs = []publish.Publisher{rec}
	h.start()
	defer h.stop()
	h.seq++
	h.feed.ch <- source.Batch{Source: "kmsg", Records: []source.Record{{Kind: source.KindKmsg, Message: "boom sda", Seq: h.seq, Time: time.Now()}},
		Position: source.Position{BootID: "boot-1", Seq: h.seq}, Truncated: 1}
	// Publishers are told after the state is saved: wait for them.
	deadline := time.Now().Add(10 * time.Second)
	for rec.get("kmsg") == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := rec.get("kmsg"); got != 1 {
		t.Fatalf("publishers were told of %d truncated records, want 1", got)
	}
}

// tickCounter counts housekeeping ticks.
type tickCounter struct {
	mu sync.Mutex
	n  int
}

func (c *tickCounter) Publish(publish.Update) {}

func (c *tickCounter) Tick(time.Time) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *tickCounter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// config.yaml's housekeepingInterval sets the tick, and a reload changes
// it; a value /readyz could not live with is refused.
func TestHousekeepingIntervalFollowsConfig(t *testing.T) {
	h := newHarness(t)
	ticks := &tickCounter{}
	h.pubs = []publish.Publisher{ticks}
	h.write("config.yaml", "housekeepingInterval: 1m\n")
	h.start()
	defer h.stop()
	waitLog := func(substr string) {
		t.Helper()
		h.eventually(10*time.Second, fmt.Sprintf("%q in the log", substr), func() (bool, string) {
			return strings.Contains(h.logs.String(), substr), "not logged"
		})
	}
	h.write("config.yaml", "housekeepingInterval: 2m\n")
	waitLog("housekeepingInterval: 2m0s: want between 1s and 1m0s")
	h.write("config.yaml", "housekeepingInterval: 1s\n")
	waitLog("rules reloaded")
	from := ticks.get()
	h.eventually(10*time.Second, "4 housekeeping ticks after setting housekeepingInterval: 1s", func() (bool, string) {
		return ticks.get() >= from+4, fmt.Sprintf("%d ticks", ticks.get()-from)
	})
}
