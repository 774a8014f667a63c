package tail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/nodehealthd/nodehealthd/internal/source"
)

const waitFor = 5 * time.Second

var (
	past   = time.Now().Add(-time.Hour) // NewFilesFromStart that makes every file new
	future = time.Now().Add(time.Hour)  // NewFilesFromStart that makes every file old
)

// mode is how a test's Source learns that files changed.
type mode struct {
	name   string
	poll   time.Duration // Config.PollInterval; 0 keeps the default
	rescan time.Duration // Config.RescanInterval; 0 keeps the default
	watch  bool          // inotify can be used
}

// modes: every behaviour must hold whether changes are found by polling or
// by events alone, and when both race.
var modes = []mode{
	// No inotify: fast polls find everything.
	{name: "poll", poll: 2 * time.Millisecond, rescan: 10 * time.Millisecond},
	// Polls too slow to matter within a test: only events find changes.
	{name: "events", poll: time.Hour, rescan: time.Hour, watch: true},
	// Events and fast polls together.
	{name: "both", poll: 2 * time.Millisecond, rescan: 10 * time.Millisecond, watch: true},
}

// defaults is production's configuration, with inotify.
var defaults = mode{name: "defaults", watch: true}

func eachMode(t *testing.T, f func(t *testing.T, m mode)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

// harness runs a Source and collects what it sends.
type harness struct {
	t       *testing.T
	root    string
	out     chan source.Batch
	recs    []source.Record
	pos     map[string]source.Position // last position per batch source
	batches int                        // batches with records
	// truncated and lost add up the batches' counts.
	truncated, lost uint64
	// warnings are those the test expects when inotify works.
	warnings []string
}

// run starts a Source over root with m's intervals; the test's cleanup stops
// it and checks that Run returns nil promptly and warned only as expected:
// once about polling when inotify cannot be used, and h.warnings.
func run(t *testing.T, m mode, root string, cfg Config, start map[string]source.Position) *harness {
	t.Helper()
	cfg.Root = root
	cfg.PollInterval = m.poll
	cfg.RescanInterval = m.rescan
	if m.watch {
		if cfg.fallbackPoll == 0 {
			// A directory that could not be watched must fail the
			// test, not be polled quietly.
			cfg.fallbackPoll = time.Hour
		}
	} else {
		cfg.newWatcher = func() (*fsnotify.Watcher, error) { return nil, errors.New("no inotify in this test") }
	}
	logs := &logRecorder{}
	cfg.Log = slog.New(logs)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, root: root, out: make(chan source.Batch), pos: map[string]source.Position{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, start, h.out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitFor):
			t.Error("Run did not return after cancel")
		}
		want := h.warnings
		if !m.watch {
			want = append([]string{"cannot watch files for changes; polling them instead"}, want...)
		}
		if got := logs.warnings(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("warnings %q, want %q", got, want)
		}
	})
	return h
}

// logRecorder keeps the messages of warnings and errors.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		l.mu.Lock()
		l.msgs = append(l.msgs, r.Message)
		l.mu.Unlock()
	}
	return nil
}

func (l *logRecorder) warnings() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

func (h *harness) receive(deadline <-chan time.Time) {
	h.t.Helper()
	select {
	case b := <-h.out:
		if !strings.HasPrefix(b.Source, "file:") {
			h.t.Fatalf("batch source %q", b.Source)
		}
		for _, r := range b.Records {
			if r.Kind != source.KindFile || "file:"+r.Path != b.Source || r.Priority != -1 || r.Facility != -1 || r.Time.IsZero() {
				h.t.Fatalf("bad record %+v in batch %q", r, b.Source)
			}
		}
		h.recs = append(h.recs, b.Records...)
		h.pos[b.Source] = b.Position
		h.truncated += b.Truncated
		h.lost += b.Lost
		if len(b.Records) > 0 {
			h.batches++
		}
	case <-deadline:
		h.t.Fatalf("timed out; records so far %q, positions %v", messages(h.recs), h.pos)
	}
}

// expect waits for the next records and checks their messages.
func (h *harness) expect(want ...string) {
	h.t.Helper()
	deadline := time.After(waitFor)
	for len(h.recs) < len(want) {
		h.receive(deadline)
	}
	got := messages(h.recs[:len(want)])
	h.recs = h.recs[len(want):]
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		h.t.Fatalf("got %q, want %q", got, want)
	}
}

// waitPos waits until path's position is want and no records are pending.
func (h *harness) waitPos(path string, want source.Position) {
	h.t.Helper()
	deadline := time.After(waitFor)
	for h.pos["file:"+path] != want {
		h.receive(deadline)
	}
	if len(h.recs) > 0 {
		h.t.Fatalf("unexpected records %q", messages(h.recs))
	}
}

func messages(recs []source.Record) []string {
	var m []string
	for _, r := range recs {
		m = append(m, r.Message)
	}
	return m
}

// write creates or replaces the file at p under root.
func write(t *testing.T, root, p, s string) uint64 {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return ino(t, root, p)
}

func appendTo(t *testing.T, root, p, s string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(root, p), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func ino(t *testing.T, root, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return inode(fi)
}

func pos(ino uint64, off int64) source.Position { return source.Position{Inode: ino, Offset: off} }

const cronLog = "/var/log/cron.log"

// followEmpty starts a Source on cronLog, created empty under a new root,
// and on cfg's other paths, and waits for cronLog's first position.
func followEmpty(t *testing.T, m mode, cfg Config) (root string, i uint64, h *harness) {
	t.Helper()
	root = t.TempDir()
	i = write(t, root, cronLog, "")
	cfg.Paths = append([]string{cronLog}, cfg.Paths...)
	h = run(t, m, root, cfg, nil)
	h.waitPos(cronLog, pos(i, 0))
	return root, i, h
}

// rotate renames p under root to p+suffix, as rename rotation does.
func rotate(t *testing.T, root, p, suffix string) {
	t.Helper()
	if err := os.Rename(filepath.Join(root, p), filepath.Join(root, p+suffix)); err != nil {
		t.Fatal(err)
	}
}

func TestAppendAndPartialLine(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		root, i, h := followEmpty(t, m, Config{NewFilesFromStart: past})

		appendTo(t, root, cronLog, "first\npar")
		h.expect("first")
		if got := h.pos["file:"+cronLog]; got != pos(i, 6) {
			t.Fatalf("position %v after first line, want offset 6", got)
		}
		// "par" was read together with "first"; it must wait for its newline.
		appendTo(t, root, cronLog, "tial\r\nthird\n")
		h.expect("partial", "third")
		h.waitPos(cronLog, pos(i, 21))
	})
}

func TestStartOfFileWithoutPosition(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		t.Run("old file starts at EOF", func(t *testing.T) {
			root := t.TempDir()
			i := write(t, root, cronLog, "history\n")
			h := run(t, m, root, Config{Paths: []string{cronLog}, NewFilesFromStart: future}, nil)
			// The start offset is stored at once, so a restart resumes there.
			h.waitPos(cronLog, pos(i, 8))
			appendTo(t, root, cronLog, "new\n")
			h.expect("new")
		})
		t.Run("new file from 0", func(t *testing.T) {
			root := t.TempDir()
			write(t, root, cronLog, "history\n")
			h := run(t, m, root, Config{Paths: []string{cronLog}, NewFilesFromStart: past}, nil)
			h.expect("history")
			appendTo(t, root, cronLog, "new\n")
			h.expect("new")
		})
	})
}

func TestResume(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		t.Run("same inode at saved offset", func(t *testing.T) {
			root := t.TempDir()
			i := write(t, root, cronLog, "l1\nl2\n")
			h := run(t, m, root, Config{Paths: []string{cronLog}, NewFilesFromStart: past},
				map[string]source.Position{"file:" + cronLog: pos(i, 3)})
			h.expect("l2")
			appendTo(t, root, cronLog, "l3\n")
			h.expect("l3")
			h.waitPos(cronLog, pos(i, 9))
		})
		t.Run("rotated while stopped", func(t *testing.T) {
			root := t.TempDir()
			old := write(t, root, cronLog, "a\nb\n")
			rotate(t, root, cronLog, ".1")
			i := write(t, root, cronLog, "c\n")
			// An old-looking file is still read from 0: the inode changed.
			h := run(t, m, root, Config{Paths: []string{cronLog}, NewFilesFromStart: future},
				map[string]source.Position{"file:" + cronLog: pos(old, 4)})
			h.expect("c")
			h.waitPos(cronLog, pos(i, 2))
		})
		t.Run("truncated while stopped", func(t *testing.T) {
			root := t.TempDir()
			i := write(t, root, cronLog, "x\n")
			h := run(t, m, root, Config{Paths: []string{cronLog}, NewFilesFromStart: future},
				map[string]source.Position{"file:" + cronLog: pos(i, 100)})
			h.expect("x")
		})
	})
}

func TestRenameRotation(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		root, i, h := followEmpty(t, m, Config{NewFilesFromStart: future})
		appendTo(t, root, cronLog, "a1\n")
		h.expect("a1")

		// Lines written to the old file just before the rename are not lost,
		// even when the rename lands after the reader last hit EOF: a2 makes it
		// hit EOF and block handing a2 over, then a3 and the rename follow. The
		// sleep only makes that interleaving likely; any other passes too.
		appendTo(t, root, cronLog, "a2\n")
		time.Sleep(20 * time.Millisecond)
		// A last line without newline is delivered when the file is left.
		appendTo(t, root, cronLog, "a3\nno newline")
		rotate(t, root, cronLog, ".1")
		j := write(t, root, cronLog, "b1\n")
		h.expect("a2", "a3", "no newline", "b1")
		h.waitPos(cronLog, pos(j, 3))
		if i == j {
			t.Fatal("rotation kept the inode")
		}
	})
}

func TestDeletedAndRecreated(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		root := t.TempDir()
		// Missing at start: waited for quietly, then read from 0 because new.
		h := run(t, m, root, Config{Paths: []string{cronLog}, NewFilesFromStart: past}, nil)
		write(t, root, cronLog, "one\n")
		h.expect("one")
		if err := os.Remove(filepath.Join(root, cronLog)); err != nil {
			t.Fatal(err)
		}
		write(t, root, cronLog, "two\n")
		h.expect("two")
	})
}

// copyFile copies src to dst under root, as copy-truncate rotation does.
func copyFile(t *testing.T, root, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, src))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, dst), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, root, p string) {
	t.Helper()
	if err := os.Truncate(filepath.Join(root, p), 0); err != nil {
		t.Fatal(err)
	}
}

func numbered(prefix string, from, to int) []string {
	var l []string
	for k := from; k < to; k++ {
		l = append(l, fmt.Sprintf("%s %03d", prefix, k))
	}
	return l
}

func lines(l []string) string { return strings.Join(l, "\n") + "\n" }

// Copy-truncate rotation while the writer goes on: lines appended after the
// last read are read from the rotated copy, and the truncated file from its
// beginning, even when it has grown past the old offset before the reader
// looks (that used to be taken for appends, losing lines silently).
func TestCopyTruncate(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		root, i, h := followEmpty(t, m, Config{NewFilesFromStart: future})
		first := numbered("first", 0, 3)
		appendTo(t, root, cronLog, lines(first))
		h.expect(first...)

		// Appended, then rotated before (or while) the reader looks.
		before := numbered("before rotation", 0, 5)
		appendTo(t, root, cronLog, lines(before))
		copyFile(t, root, cronLog, cronLog+".1")
		// A newer rotated file of another origin must not be taken for
		// the copy.
		write(t, root, cronLog+".2", strings.Repeat("z", 300))
		truncate(t, root, cronLog)
		after := numbered("after rotation, and longer than everything before it", 0, 8)
		appendTo(t, root, cronLog, lines(after))
		h.expect(append(before, after...)...)
		h.waitPos(cronLog, pos(i, int64(len(lines(after)))))
		if h.lost != 0 {
			t.Errorf("%d lines counted lost, want 0", h.lost)
		}
	})
}

// Without a rotated copy, the truncated file is read from its beginning
// even when it has grown past the old offset, and the log says that lines
// may have been lost: whether the writer appended between the last read and
// the truncation cannot be known.
func TestTruncateWithoutCopy(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		root, i, h := followEmpty(t, m, Config{NewFilesFromStart: future})
		h.warnings = []string{"file truncated, and no rotated copy holds its last lines; lines written after the last read, if any, are lost uncounted"}
		appendTo(t, root, cronLog, "a fairly long first line\nand a second one\n")
		h.expect("a fairly long first line", "and a second one")

		truncate(t, root, cronLog)
		after := numbered("after truncation", 0, 4)
		appendTo(t, root, cronLog, lines(after))
		h.expect(after...)
		h.waitPos(cronLog, pos(i, int64(len(lines(after)))))
		if h.lost != 0 {
			t.Errorf("%d lines counted lost, want 0", h.lost)
		}
	})
}

// A file truncated while the reader is behind: every line is either read
// or counted as lost. With a rotated copy (here with a date suffix) none is
// lost; without one, the lines the file was known to hold beyond the last
// complete line read are counted (exactly, as all lines here are as long).
func TestTruncateWhileBehind(t *testing.T) {
	const n = 20000 // 100 bytes each, well within one poll's read budget
	var all []string
	for k := range n {
		all = append(all, fmt.Sprintf("%099d", k))
	}
	for _, withCopy := range []bool{true, false} {
		t.Run(fmt.Sprintf("copy=%v", withCopy), func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				root := t.TempDir()
				write(t, root, cronLog, lines(all))
				h := run(t, m, root, Config{Paths: []string{cronLog}, NewFilesFromStart: past, MaxBatch: 100}, nil)
				// Once lines came, the source waits to hand over the
				// next batch, somewhere in the file.
				for deadline := time.After(waitFor); len(h.recs) == 0; {
					h.receive(deadline)
				}
				if withCopy {
					copyFile(t, root, cronLog, "/var/log/cron-20260301.log")
				}
				truncate(t, root, cronLog)
				appendTo(t, root, cronLog, "after\n")

				deadline := time.After(waitFor)
				for len(h.recs) == 0 || h.recs[len(h.recs)-1].Message != "after" {
					h.receive(deadline)
				}
				got := messages(h.recs[:len(h.recs)-1])
				if strings.Join(got, "\n") != strings.Join(all[:len(got)], "\n") {
					t.Fatalf("the %d lines read are not the file's first ones", len(got))
				}
				if withCopy && len(got) != n {
					t.Errorf("read %d lines of %d from the file and its copy", len(got), n)
				}
				if uint64(len(got))+h.lost != n {
					t.Errorf("read %d lines and counted %d lost, want %d in all", len(got), h.lost, n)
				}
				t.Logf("read %d, counted %d lost", len(got), h.lost)
			})
		})
	}
}

func TestGlobDiscovery(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		root := t.TempDir()
		const pattern = "/var/cronLog/pods/*kube-proxy*/*/*.cronLog"
		const oldLog = "/var/cronLog/pods/kube-system_kube-proxy-a_1/kube-proxy/0.cronLog"
		const newLog = "/var/cronLog/pods/kube-system_kube-proxy-b_2/kube-proxy/0.cronLog"
		write(t, root, "/var/cronLog/pods/kube-system_coredns-c_3/coredns/0.cronLog", "not matched\n")
		i := write(t, root, oldLog, "before install\n")
		start := time.Now()
		h := run(t, m, root, Config{Paths: []string{pattern}, NewFilesFromStart: start}, nil)
		h.waitPos(oldLog, pos(i, 15))

		// Filesystem timestamps come from a coarse clock that can lag
		// time.Now() by a tick; make sure the next file is born after start.
		for time.Since(start) < 50*time.Millisecond {
			time.Sleep(5 * time.Millisecond)
		}
		write(t, root, newLog, "I0101 proxier.go:1 started\n")
		h.expect("I0101 proxier.go:1 started")
		if h.pos["file:"+newLog].Inode != ino(t, root, newLog) {
			t.Fatalf("positions %v", h.pos)
		}

		// A vanished match is dropped; a file that reappears there is new.
		if err := os.RemoveAll(filepath.Join(root, filepath.Dir(filepath.Dir(newLog)))); err != nil {
			t.Fatal(err)
		}
		appendTo(t, root, oldLog, "still here\n")
		h.expect("still here")
		write(t, root, newLog, "again\n")
		h.expect("again")
	})
}

// Lines are cut to source.MaxMessageBytes, whatever reads they span; the
// cut is counted and logged once. A line that fits, however long, arrives
// whole.
func TestLongLinesAndGarbage(t *testing.T) {
	const limit = source.MaxMessageBytes
	eachMode(t, func(t *testing.T, m mode) {
		root, i, h := followEmpty(t, m, Config{NewFilesFromStart: future})
		h.warnings = []string{"line too long; the rules see its beginning only"}

		garbage := make([]byte, 512)
		for k := range garbage {
			garbage[k] = byte(k*7) | 1 // no '\n' (10 is even)
		}
		fits := strings.Repeat("a", 100<<10-len("END-A")) + "END-A"
		crlf := strings.Repeat("c", limit)       // its '\r' lies beyond the limit
		over := strings.Repeat("o", limit) + "x" // one byte too many
		long := strings.Repeat("l", limit-len("IN-B")) + "IN-B" + strings.Repeat("l", limit/2) + "OUT-C"
		in := fits + "\n" + long + "\n" + string(garbage) + "\n" + crlf + "\r\n" + over + "\nshort\n"
		appendTo(t, root, cronLog, in)

		deadline := time.After(waitFor)
		for len(h.recs) < 6 {
			h.receive(deadline)
		}
		want := []string{fits, long[:limit], string(garbage), crlf, over[:limit], "short"}
		for k, w := range want {
			if got := h.recs[k].Message; got != w {
				t.Errorf("line %d: got %d bytes ending %q, want %d bytes ending %q", k, len(got), got[max(0, len(got)-8):], len(w), w[max(0, len(w)-8):])
			}
		}
		if !strings.HasSuffix(h.recs[0].Message, "END-A") || !strings.HasSuffix(h.recs[1].Message, "IN-B") || strings.Contains(h.recs[1].Message, "OUT-C") {
			t.Error("tokens within the limit missing, or a token beyond it kept")
		}
		h.recs = h.recs[6:]
		h.waitPos(cronLog, pos(i, int64(len(in))))
		if h.truncated != 2 {
			t.Errorf("%d lines counted as truncated, want 2", h.truncated)
		}
	})
}

func TestStopsWhileBlocked(t *testing.T) {
	root := t.TempDir()
	write(t, root, cronLog, strings.Repeat("line\n", 5000))
	s, err := New(Config{Root: root, Paths: []string{cronLog}, NewFilesFromStart: past, MaxBatch: 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	out := make(chan source.Batch)
	go func() { done <- s.Run(ctx, nil, out) }()
	<-out // Run is busy and no one reads the rest
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		t.Fatal("Run did not return after cancel")
	}
}

func TestConfig(t *testing.T) {
	for _, p := range []string{"var/cronLog/messages", "/var/cronLog/[x"} {
		if _, err := New(Config{Paths: []string{p}}); err == nil {
			t.Errorf("New accepted %q", p)
		}
	}
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "file" {
		t.Errorf("Name() = %q", s.Name())
	}
	if err := s.Run(context.Background(), nil, nil); !errors.Is(err, source.ErrUnavailable) {
		t.Errorf("Run without paths: %v", err)
	}
}

// With the default intervals a poll is 10s away, so only events can deliver
// within the bound: a line, a file that appears, a new pod's nested log
// directory.
func TestEventLatency(t *testing.T) {
	const bound = 500 * time.Millisecond
	if DefaultPollInterval < 10*bound || DefaultRescanInterval < 10*bound {
		t.Fatalf("default intervals %v, %v would let polling pass this test", DefaultPollInterval, DefaultRescanInterval)
	}
	const podLog = "/var/log/pods/kube-system_kube-proxy-z_9/kube-proxy/0.log"
	root, _, h := followEmpty(t, defaults, Config{Paths: []string{"/var/log/messages", "/var/log/pods/*kube-proxy*/*/*.log"}, NewFilesFromStart: past})

	check := func(what string, change func(), want string) {
		t.Helper()
		begin := time.Now()
		change()
		h.expect(want)
		d := time.Since(begin)
		if d > bound {
			t.Errorf("%s delivered after %v, want within %v", what, d, bound)
		}
		t.Logf("%s delivered after %v", what, d)
	}
	for k := range 5 {
		// Spaced out so that some lines come after a quiet spell and some
		// within the coalescing delay of the previous read.
		time.Sleep(time.Duration(k) * 40 * time.Millisecond)
		line := fmt.Sprintf("line %d", k)
		check(line, func() { appendTo(t, root, cronLog, line+"\n") }, line)
	}
	check("created file", func() { write(t, root, "/var/log/messages", "hello\n") }, "hello")
	check("new pod", func() { write(t, root, podLog, "proxier started\n") }, "proxier started")
	check("line in pod log", func() { appendTo(t, root, podLog, "more\n") }, "more")
}

// A busy log is read a few times a second, not once per write.
func TestCoalescing(t *testing.T) {
	root, _, h := followEmpty(t, defaults, Config{NewFilesFromStart: future})

	const lines = 300
	const every = 3 * time.Millisecond
	var want []string
	for k := range lines {
		want = append(want, fmt.Sprintf("line %d", k))
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		f, err := os.OpenFile(filepath.Join(root, cronLog), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		for _, l := range want {
			if _, err := f.WriteString(l + "\n"); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(every)
		}
	}()
	// Receive while the writer runs, so that a slow reader cannot make
	// the batches few.
	begin := time.Now()
	h.expect(want...)
	elapsed := time.Since(begin)
	<-wrote
	// One read per 100ms, plus the first read after the quiet spell and a
	// little slack for timer lateness. Without coalescing nearly every
	// write would be read by itself.
	if limit := int(elapsed/(100*time.Millisecond)) + 3; h.batches > limit {
		t.Errorf("%d lines written over %v came in %d batches, want at most %d", lines, elapsed, h.batches, limit)
	}
	t.Logf("%d lines over %v in %d batches", lines, elapsed, h.batches)
}

// Nothing of a pattern's path exists at first; the directories appear one
// level at a time and at once, as kubelet creates them.
func TestGlobBaseCreatedLater(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		root := t.TempDir()
		const pattern = "/var/log/pods/*kube-proxy*/*/*.log"
		h := run(t, m, root, Config{Paths: []string{pattern}, NewFilesFromStart: past}, nil)
		// Each step waits out the coalescing delay, so that it is seen
		// through the watches the previous one led to.
		for _, dir := range []string{"/var", "/var/log", "/var/log/pods", "/var/log/pods/ns_kube-proxy-a_1", "/var/log/pods/ns_kube-proxy-a_1/kube-proxy"} {
			if err := os.Mkdir(filepath.Join(root, dir), 0o755); err != nil {
				t.Fatal(err)
			}
			time.Sleep(150 * time.Millisecond)
		}
		write(t, root, "/var/log/pods/ns_kube-proxy-a_1/kube-proxy/0.log", "a\n")
		h.expect("a")
		write(t, root, "/var/log/pods/ns_kube-proxy-b_2/kube-proxy/0.log", "b\n")
		h.expect("b")
		// The whole base goes and comes back.
		if err := os.RemoveAll(filepath.Join(root, "/var/log/pods")); err != nil {
			t.Fatal(err)
		}
		write(t, root, "/var/log/pods/ns_kube-proxy-c_3/kube-proxy/0.log", "c\n")
		h.expect("c")
	})
}

// A followed path that is a symbolic link (/var/log/containers, or a
// "current" link next to dated files) is written through its target, whose
// name and directory the writes are reported under.
func TestSymlink(t *testing.T) {
	for _, c := range []struct{ name, link, target, rel string }{
		{"other directory", "/var/log/containers/kube-proxy-a.log", "/var/log/pods/ns_kube-proxy-a_1/kube-proxy/0.log", "../pods/ns_kube-proxy-a_1/kube-proxy/0.log"},
		{"same directory", "/var/log/app/current", "/var/log/app/app-1.log", "app-1.log"},
	} {
		t.Run(c.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				root := t.TempDir()
				i := write(t, root, c.target, "")
				if err := os.MkdirAll(filepath.Join(root, filepath.Dir(c.link)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(c.rel, filepath.Join(root, c.link)); err != nil {
					t.Fatal(err)
				}
				h := run(t, m, root, Config{Paths: []string{c.link}, NewFilesFromStart: future}, nil)
				h.waitPos(c.link, pos(i, 0))
				appendTo(t, root, c.target, "one\n")
				h.expect("one")
				// Rotation renames the target and creates a new one.
				rotate(t, root, c.target, ".20260101-000000")
				write(t, root, c.target, "two\n")
				h.expect("two")
				appendTo(t, root, c.target, "three\n")
				h.expect("three")
			})
		})
	}
}

// A directory that cannot be watched (the watch table is full) is polled at
// the fallback interval, and said so once, until a watch succeeds.
func TestWatchFails(t *testing.T) {
	root := t.TempDir()
	i := write(t, root, cronLog, "")
	var mu sync.Mutex
	full := true
	dir := filepath.Join(root, filepath.Dir(cronLog))
	add := func(w *fsnotify.Watcher, d string) error {
		mu.Lock()
		defer mu.Unlock()
		if full && d == dir {
			return syscall.ENOSPC
		}
		return w.Add(d)
	}
	m := mode{name: "events", poll: time.Hour, rescan: 50 * time.Millisecond, watch: true}
	h := run(t, m, root, Config{Paths: []string{cronLog}, NewFilesFromStart: future, addWatch: add, fallbackPoll: 5 * time.Millisecond}, nil)
	h.warnings = []string{"cannot watch directory; polling its files"}
	h.waitPos(cronLog, pos(i, 0))
	for k := range 3 {
		// Rescans keep failing and must not warn again.
		time.Sleep(60 * time.Millisecond)
		line := fmt.Sprintf("polled %d", k)
		appendTo(t, root, cronLog, line+"\n")
		h.expect(line)
	}

	// A later rescan gets the watch; following goes on.
	mu.Lock()
	full = false
	mu.Unlock()
	time.Sleep(200 * time.Millisecond) // a rescan adds the watch
	appendTo(t, root, cronLog, "watched\n")
	h.expect("watched")
}
