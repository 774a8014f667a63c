package journal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/source"
	"github.com/nodehealthd/nodehealthd/internal/source/journal/journaltest"
)

var base = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// kubelet returns entries "m<from>".."m<to>" from kubelet, entry i logged at
// base + i seconds.
func kubelet(from, to int) []journaltest.Entry {
	var es []journaltest.Entry
	for i := from; i <= to; i++ {
		es = append(es, journaltest.Entry{Time: base.Add(time.Duration(i) * time.Second), Message: fmt.Sprintf("m%d", i), Identifier: "kubelet"})
	}
	return es
}

func testConfig(dir string) Config {
	return Config{
		Dir:          dir,
		Identifiers:  []string{"kubelet"},
		PollInterval: 50 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// newJournal writes es to a new journal directory and returns it with
// testConfig for it.
func newJournal(t *testing.T, es []journaltest.Entry) (dir string, cfg Config) {
	t.Helper()
	dir = t.TempDir()
	journaltest.WriteJournal(t, dir, es)
	return dir, testConfig(dir)
}

// run is one Run of a Source in the background.
type run struct {
	t      *testing.T
	cancel context.CancelFunc
	out    chan source.Batch
	done   chan error
}

func startRun(t *testing.T, cfg Config, pos source.Position) *run {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{t: t, cancel: cancel, out: make(chan source.Batch), done: make(chan error, 1)}
	start := map[string]source.Position{}
	if !pos.IsZero() {
		start[name] = pos
	}
	go func() { r.done <- New(cfg).Run(ctx, start, r.out) }()
	t.Cleanup(func() { r.stop() })
	return r
}

// collect receives batches until they hold n records in all.
func (r *run) collect(n int) []source.Batch {
	r.t.Helper()
	var bs []source.Batch
	got := 0
	timeout := time.After(10 * time.Second)
	for got < n {
		select {
		case b := <-r.out:
			if b.Source != "journal" || b.Position.Cursor == "" {
				r.t.Fatalf("bad batch %+v", b)
			}
			bs = append(bs, b)
			got += len(b.Records)
		case err := <-r.done:
			r.t.Fatalf("Run returned %v after %d of %d records", err, got, n)
		case <-timeout:
			r.t.Fatalf("timed out after %d of %d records", got, n)
		}
	}
	return bs
}

// quiet fails if records arrive within d.
func (r *run) quiet(d time.Duration) {
	r.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case b := <-r.out:
			if len(b.Records) > 0 {
				r.t.Fatalf("unexpected records %v", messages([]source.Batch{b}))
			}
		case <-timeout:
			return
		}
	}
}

// stop cancels the run and returns Run's result; it fails if Run does not
// return promptly.
func (r *run) stop() error {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(2 * time.Second):
		r.t.Fatal("Run did not return after cancel")
		return nil
	}
}

func messages(bs []source.Batch) []string {
	var ms []string
	for _, b := range bs {
		for _, rec := range b.Records {
			ms = append(ms, rec.Message)
		}
	}
	return ms
}

func names(prefix string, from, to int) []string {
	var ms []string
	for i := from; i <= to; i++ {
		ms = append(ms, fmt.Sprintf("%s%d", prefix, i))
	}
	return ms
}

func last(bs []source.Batch) source.Position { return bs[len(bs)-1].Position }

func TestReadsMatchingEntriesOnly(t *testing.T) {
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	dir, _ := newJournal(t, []journaltest.Entry{
		{Time: at(0), Message: "k0", Identifier: "kubelet", Fields: map[string]string{"PRIORITY": "3"}},
		{Time: at(1), Message: "s1", Identifier: "systemd", Unit: "init.scope"},
		{Time: at(2), Message: "own2", Identifier: "nodehealthd", Unit: "containerd.service"},
		{Time: at(3), Message: "own3", Identifier: "kubelet", Fields: map[string]string{"NODEHEALTH_REASON": "KubeletFailed"}},
		{Time: at(4), Message: "line1\nline2 \n", Identifier: "containerd", Unit: "containerd.service", Fields: map[string]string{"PRIORITY": "6"}},
		{Time: at(5), Message: "o5", Identifier: "other", Unit: "other.service"},
		{Time: at(6), Message: "bin\xff\xfe\x00x", Identifier: "kubelet"},
		{Time: at(7), Message: "k7", Identifier: "kubelet", Unit: "other.service"},
		{Time: at(8), Message: "c8", Unit: "containerd.service", Fields: map[string]string{"PRIORITY": "x"}},
	})

	for _, tc := range []struct {
		name   string
		ids    []string
		units  []string
		want   []string
		cursor string // i= field of the last batch's cursor
	}{
		{"both", []string{"kubelet"}, []string{"containerd.service"}, []string{"k0", "line1\nline2", "bin\xff\xfe\x00x", "k7", "c8"}, ";i=9;"},
		{"identifiers", []string{"kubelet", "absent"}, nil, []string{"k0", "bin\xff\xfe\x00x", "k7"}, ";i=8;"},
		{"units", nil, []string{"containerd.service"}, []string{"line1\nline2", "c8"}, ";i=9;"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(dir)
			cfg.Identifiers, cfg.Units = tc.ids, tc.units
			r := startRun(t, cfg, source.Position{})
			bs := r.collect(len(tc.want))
			r.quiet(200 * time.Millisecond)
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			if got := messages(bs); !slices.Equal(got, tc.want) {
				t.Errorf("messages %q, want %q", got, tc.want)
			}
			if c := last(bs).Cursor; !strings.Contains(c, tc.cursor) {
				t.Errorf("last cursor %s, want %s", c, tc.cursor)
			}
		})
	}

	// Field mapping, on the "both" selection, through the one-pass reader,
	// through sdjournal, and with the one-pass reader falling back to
	// sdjournal for entries too large for its buffer.
	want := []source.Record{
		{Kind: source.KindJournal, Message: "k0", Time: at(0), Identifier: "kubelet", Priority: 3, Facility: -1},
		{Kind: source.KindJournal, Message: "line1\nline2", Time: at(4), Identifier: "containerd", Unit: "containerd.service", Priority: 6, Facility: -1},
		{Kind: source.KindJournal, Message: "bin\xff\xfe\x00x", Time: at(6), Identifier: "kubelet", Priority: -1, Facility: -1},
		{Kind: source.KindJournal, Message: "k7", Time: at(7), Identifier: "kubelet", Unit: "other.service", Priority: -1, Facility: -1},
		{Kind: source.KindJournal, Message: "c8", Time: at(8), Unit: "containerd.service", Priority: -1, Facility: -1},
	}
	for _, mode := range []struct {
		name string
		fast bool
		buf  int
	}{{"one-pass", true, fastFieldsBuf}, {"sdjournal", false, fastFieldsBuf}, {"fallback", true, 12}} {
		t.Run("fields/"+mode.name, func(t *testing.T) {
			defer func(f bool, b int) { useFastFields, fastFieldsBuf = f, b }(useFastFields, fastFieldsBuf)
			useFastFields, fastFieldsBuf = mode.fast, mode.buf
			cfg := testConfig(dir)
			cfg.Units = []string{"containerd.service"}
			r := startRun(t, cfg, source.Position{})
			var recs []source.Record
			for _, b := range r.collect(len(want)) {
				recs = append(recs, b.Records...)
			}
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if got := recs[i]; got.Kind != want[i].Kind || got.Message != want[i].Message || !got.Time.Equal(want[i].Time) ||
					got.Identifier != want[i].Identifier || got.Unit != want[i].Unit || got.Priority != want[i].Priority ||
					got.Facility != want[i].Facility || got.Seq != 0 || got.Path != "" || got.Fields != nil {
					t.Errorf("record %d = %+v, want %+v", i, got, want[i])
				}
			}
		})
	}
}

// Rules changed between runs: the saved entry exists but no longer matches.
// That is no gap, and reading goes on after it.
func TestResumeWithChangedRules(t *testing.T) {
	es := kubelet(1, 6)
	for i := range es {
		if i%2 == 1 {
			es[i].Identifier, es[i].Unit = "containerd", "containerd.service"
		}
	}
	_, cfg := newJournal(t, es) // m1 kubelet, m2 containerd, ...
	r := startRun(t, cfg, source.Position{})
	bs := r.collect(1)
	r.stop()
	if got := messages(bs[:1]); !slices.Equal(got, []string{"m1", "m3", "m5"}) {
		t.Fatalf("first run %q", got)
	}
	cfg.Identifiers, cfg.Units = nil, []string{"containerd.service"}
	r = startRun(t, cfg, bs[0].Position) // after m5, now not matching
	bs = r.collect(1)
	if got := messages(bs); !slices.Equal(got, []string{"m6"}) || bs[0].Lost != 0 {
		t.Errorf("after rule change: %q, lost %d; want [m6], 0", got, bs[0].Lost)
	}
}

func TestFirstStartReadsFromBootTime(t *testing.T) {
	_, cfg := newJournal(t, kubelet(1, 10))
	cfg.BootTime = base.Add(6 * time.Second)
	r := startRun(t, cfg, source.Position{})
	bs := r.collect(5)
	r.quiet(200 * time.Millisecond)
	if got, want := messages(bs), names("m", 6, 10); !slices.Equal(got, want) {
		t.Errorf("messages %q, want %q", got, want)
	}
}

func TestResumeFromCursor(t *testing.T) {
	dir, cfg := newJournal(t, kubelet(1, 10))
	cfg.MaxBatch = 4

	r := startRun(t, cfg, source.Position{})
	bs := r.collect(10)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if got, want := messages(bs), names("m", 1, 10); !slices.Equal(got, want) {
		t.Fatalf("first run: %q, want %q", got, want)
	}
	if len(bs) != 3 || len(bs[0].Records) != 4 {
		t.Errorf("first run: batches of %v records, want 4,4,2", lens(bs))
	}

	// A crash after the first batch was committed: the rest is read again,
	// the first batch is not.
	r = startRun(t, cfg, bs[0].Position)
	again := r.collect(6)
	r.quiet(200 * time.Millisecond)
	r.stop()
	if got, want := messages(again), names("m", 5, 10); !slices.Equal(got, want) {
		t.Errorf("resume after batch 1: %q, want %q", got, want)
	}

	// Entries appended while stopped and while running.
	journaltest.WriteJournal(t, dir, kubelet(11, 15))
	r = startRun(t, cfg, last(bs))
	more := r.collect(5)
	journaltest.WriteJournal(t, dir, kubelet(16, 18))
	more = append(more, r.collect(3)...)
	r.quiet(300 * time.Millisecond)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if got, want := messages(more), names("m", 11, 18); !slices.Equal(got, want) {
		t.Errorf("resume at end: %q, want %q", got, want)
	}
	for _, b := range more {
		if b.Lost != 0 {
			t.Errorf("Lost = %d, want 0", b.Lost)
		}
	}
}

func lens(bs []source.Batch) []int {
	var ns []int
	for _, b := range bs {
		ns = append(ns, len(b.Records))
	}
	return ns
}

// cursorAt3 reads a journal of m1..m10 and returns the cursor after m3.
func cursorAt3(t *testing.T) string {
	t.Helper()
	_, cfg := newJournal(t, kubelet(1, 10))
	cfg.MaxBatch = 3
	r := startRun(t, cfg, source.Position{})
	bs := r.collect(3)
	r.stop()
	if got := messages(bs[:1]); !slices.Equal(got, names("m", 1, 3)) {
		t.Fatalf("first batch %q", got)
	}
	return bs[0].Position.Cursor
}

func TestVacuumedCursorSameSeqnumID(t *testing.T) {
	cursor := cursorAt3(t)
	saved, err := parseCursor(cursor)
	if err != nil {
		t.Fatal(err)
	}
	// The files with m1..m5 were vacuumed; the surviving one continues
	// their sequence numbers.
	dir := t.TempDir()
	journaltest.ContinueSeqnum(t, dir, saved.seqnumID, 5)
	journaltest.WriteJournal(t, dir, kubelet(6, 10))

	r := startRun(t, testConfig(dir), source.Position{Cursor: cursor})
	bs := r.collect(5)
	r.quiet(200 * time.Millisecond)
	if got, want := messages(bs), names("m", 6, 10); !slices.Equal(got, want) {
		t.Errorf("messages %q, want %q", got, want)
	}
	if bs[0].Lost != 2 {
		t.Errorf("Lost = %d, want 2 (m4, m5)", bs[0].Lost)
	}
	if !strings.Contains(last(bs).Cursor, "s="+saved.seqnumID+";i=a;") {
		t.Errorf("cursor %s does not continue seqnum ID %s at 10", last(bs).Cursor, saved.seqnumID)
	}
}

func TestVacuumedCursorNewJournal(t *testing.T) {
	cursor := cursorAt3(t)
	_, cfg := newJournal(t, kubelet(6, 10)) // new seqnum ID, all after the cursor
	r := startRun(t, cfg, source.Position{Cursor: cursor})
	bs := r.collect(5)
	if got, want := messages(bs), names("m", 6, 10); !slices.Equal(got, want) {
		t.Errorf("messages %q, want %q", got, want)
	}
	if bs[0].Lost != 1 {
		t.Errorf("Lost = %d, want 1 (unknown gap)", bs[0].Lost)
	}
}

// A cursor from another journal that holds older entries too (a different
// host root, a rebuilt file) is placed by time, and nothing is reported lost.
func TestForeignCursorResumesByTime(t *testing.T) {
	cursor := cursorAt3(t)
	_, cfg := newJournal(t, kubelet(1, 10))
	r := startRun(t, cfg, source.Position{Cursor: cursor})
	bs := r.collect(7)
	got := messages(bs)
	if !slices.Equal(got, names("m", 4, 10)) && !slices.Equal(got[:7], names("m", 3, 9)) {
		t.Errorf("messages %q, want from m3 or m4 on", got)
	}
	for _, b := range bs {
		if b.Lost != 0 {
			t.Errorf("Lost = %d, want 0", b.Lost)
		}
	}
}

func TestBadCursorReadsCurrentBoot(t *testing.T) {
	_, cfg := newJournal(t, kubelet(1, 4))
	cfg.BootTime = base.Add(3 * time.Second)
	r := startRun(t, cfg, source.Position{Cursor: "garbage"})
	if got := messages(r.collect(2)); !slices.Equal(got, names("m", 3, 4)) {
		t.Errorf("messages %q, want m3, m4", got)
	}
}

func TestRootLayout(t *testing.T) {
	root := t.TempDir()
	// Volatile storage: /var/log/journal exists but is empty, as on this
	// build machine; the journal is under /run in a machine-ID directory.
	if err := os.MkdirAll(filepath.Join(root, "var/log/journal"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "run/log/journal/0123456789abcdef0123456789abcdef")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := journaltest.WriteJournal(t, dir, kubelet(1, 3))

	cfg := testConfig("")
	cfg.Root = root
	r := startRun(t, cfg, source.Position{})
	if got := messages(r.collect(3)); !slices.Equal(got, names("m", 1, 3)) {
		t.Errorf("root: %q", got)
	}
	r.stop()

	// Dir naming a single file.
	r = startRun(t, testConfig(file), source.Position{})
	if got := messages(r.collect(3)); !slices.Equal(got, names("m", 1, 3)) {
		t.Errorf("file: %q", got)
	}
}

func TestUnavailable(t *testing.T) {
	empty := t.TempDir()
	withDirs := t.TempDir()
	for _, d := range []string{"var/log/journal/0123456789abcdef0123456789abcdef", "run/log/journal"} {
		if err := os.MkdirAll(filepath.Join(withDirs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, cfg := range map[string]Config{
		"empty root":         {Root: empty},
		"root without files": {Root: withDirs},
		"missing dir":        {Dir: filepath.Join(empty, "nope")},
		"empty dir":          {Dir: empty},
	} {
		cfg.Identifiers = []string{"kubelet"}
		err := New(cfg).Run(context.Background(), nil, make(chan source.Batch))
		if !errors.Is(err, source.ErrUnavailable) {
			t.Errorf("%s: Run = %v, want ErrUnavailable", name, err)
		}
	}
}

func TestNoMatchesReturnsAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := New(Config{Root: t.TempDir()}).Run(ctx, nil, make(chan source.Batch)); err != nil || ctx.Err() != nil {
		t.Errorf("Run = %v (ctx %v), want nil at once", err, ctx.Err())
	}
}

// Stopping must not wait for PollInterval or for a reader of out.
func TestStopIsPrompt(t *testing.T) {
	_, cfg := newJournal(t, kubelet(1, 2))
	cfg.PollInterval = time.Minute
	for _, read := range []bool{true, false} {
		r := startRun(t, cfg, source.Position{})
		if read {
			r.collect(2)
		}
		time.Sleep(100 * time.Millisecond)
		begin := time.Now()
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(begin); d > time.Second {
			t.Errorf("stop took %v", d)
		}
	}
}

func TestParseCursor(t *testing.T) {
	ci, err := parseCursor("s=ac847c59b2fa477b8e09e1bbe8e6e4b8;i=1f;b=00000000000000000000000000000000;m=0;t=60a24181e4000;x=1d228c99d44b1464")
	if err != nil || ci != (cursorInfo{seqnumID: "ac847c59b2fa477b8e09e1bbe8e6e4b8", seqnum: 31, realtime: 0x60a24181e4000}) {
		t.Errorf("parseCursor = %+v, %v", ci, err)
	}
	for _, bad := range []string{"", "garbage", "s=ab;i=zz", "i=1;t=2"} {
		if _, err := parseCursor(bad); err == nil {
			t.Errorf("parseCursor(%q) succeeded", bad)
		}
	}
}

func TestGap(t *testing.T) {
	c := func(id string, seq, rt uint64) cursorInfo { return cursorInfo{seqnumID: id, seqnum: seq, realtime: rt} }
	for _, tc := range []struct {
		name       string
		saved      cursorInfo
		oldest     cursorInfo
		haveOldest bool
		vacuumed   bool
		lost       uint64
	}{
		{"same id, gap", c("a", 3, 30), c("a", 6, 60), true, true, 2},
		{"same id, next survived", c("a", 3, 30), c("a", 4, 40), true, true, 0},
		{"same id, older present", c("a", 3, 30), c("a", 1, 10), true, false, 0},
		{"same id, clock went back", c("a", 3, 30), c("a", 9, 5), true, true, 5},
		{"new id, newer", c("a", 3, 30), c("b", 1, 40), true, true, 1},
		{"new id, older", c("a", 3, 30), c("b", 1, 20), true, false, 0},
		{"empty journal", c("a", 3, 30), cursorInfo{}, false, true, 1},
	} {
		if v, l := gap(tc.saved, tc.oldest, tc.haveOldest); v != tc.vacuumed || l != tc.lost {
			t.Errorf("%s: gap = %v, %d; want %v, %d", tc.name, v, l, tc.vacuumed, tc.lost)
		}
	}
}

// A message larger than the one-pass reader's buffer is read again through
// sdjournal and arrives whole.
func TestLongMessage(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 200<<10/16)
	_, cfg := newJournal(t, []journaltest.Entry{{Time: base, Message: long, Identifier: "kubelet"}})
	for _, fast := range []bool{true, false} {
		defer func(f bool) { useFastFields = f }(useFastFields)
		useFastFields = fast
		r := startRun(t, cfg, source.Position{})
		msg := r.collect(1)[0].Records[0].Message
		r.stop()
		if msg != long {
			t.Errorf("fast=%v: message of %d bytes, want %d", fast, len(msg), len(long))
		}
	}
}

// A message longer than source.MaxMessageBytes is cut to it and counted,
// the same through both readers: a token in its first MaxMessageBytes is
// matched, one beyond is not.
func TestOverlongMessageIsCut(t *testing.T) {
	const limit = source.MaxMessageBytes
	long := strings.Repeat("m", limit-len("IN-B")) + "IN-B" + strings.Repeat("x", limit/2) + "OUT-C"
	_, cfg := newJournal(t, []journaltest.Entry{
		{Time: base, Message: long, Identifier: "kubelet"},
		{Time: base.Add(time.Second), Message: "short", Identifier: "kubelet"},
	})
	for _, fast := range []bool{true, false} {
		defer func(f bool) { useFastFields = f }(useFastFields)
		useFastFields = fast
		r := startRun(t, cfg, source.Position{})
		bs := r.collect(2)
		r.stop()
		var truncated uint64
		for _, b := range bs {
			truncated += b.Truncated
		}
		msgs := messages(bs)
		if len(msgs[0]) != limit || !strings.HasSuffix(msgs[0], "IN-B") || msgs[1] != "short" {
			t.Errorf("fast=%v: messages of %d and %d bytes, want %d ending in IN-B and \"short\"", fast, len(msgs[0]), len(msgs[1]), limit)
		}
		if truncated != 1 {
			t.Errorf("fast=%v: %d messages counted as truncated, want 1", fast, truncated)
		}
	}
}

// Everything was vacuumed: the gap is reported at once, in a batch without
// records that keeps the old position, and new entries follow.
func TestVacuumedCursorEmptyJournal(t *testing.T) {
	cursor := cursorAt3(t)
	dir, cfg := newJournal(t, nil)
	r := startRun(t, cfg, source.Position{Cursor: cursor})
	select {
	case b := <-r.out:
		if b.Lost != 1 || len(b.Records) != 0 || b.Position.Cursor != cursor {
			t.Errorf("first batch %+v, want Lost 1, no records, the saved cursor", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no batch reporting the gap")
	}
	journaltest.WriteJournal(t, dir, kubelet(20, 21))
	if got := messages(r.collect(2)); !slices.Equal(got, names("m", 20, 21)) {
		t.Errorf("messages %q, want m20, m21", got)
	}
}

// A reader following an idle journal waits on sd-journal's descriptor and
// wakes only for new entries, which it reads at once even though its poll
// interval is long; waiting with sd_journal_wait (the fallback) wakes it
// five times a second.
func TestFollowIdleWithoutWakeups(t *testing.T) {
	for _, fd := range []bool{true, false} {
		t.Run(fmt.Sprintf("fd=%v", fd), func(t *testing.T) {
			defer func(v bool) { useFDWait = v }(useFDWait)
			useFDWait = fd
			dir, cfg := newJournal(t, kubelet(1, 2))
			cfg.PollInterval = time.Minute
			r := startRun(t, cfg, source.Position{})
			r.collect(2)
			time.Sleep(100 * time.Millisecond) // into the wait
			before := waitWakeups.Load()
			r.quiet(time.Second)
			woke := waitWakeups.Load() - before
			if fd && woke > 0 {
				t.Errorf("an idle reader woke %d times in a second", woke)
			}
			if !fd && woke < 3 {
				t.Errorf("the sd_journal_wait fallback woke %d times in a second; this test no longer tells the two apart", woke)
			}
			journaltest.WriteJournal(t, dir, kubelet(3, 4))
			if got := messages(r.collect(2)); !slices.Equal(got, []string{"m3", "m4"}) {
				t.Errorf("appended entries read as %q", got)
			}
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Rotation while following, as journald does it: the active file is
// renamed to an archive name and a new file is started, with a new sequence
// number ID here (journal-remote cannot continue one). Entries in the new
// file are read without a gap reported, and the archive's are not read
// again; then the archive is vacuumed, and reading still goes on.
func TestFollowsRotationAndVacuum(t *testing.T) {
	dir, cfg := newJournal(t, kubelet(1, 5))
	r := startRun(t, cfg, source.Position{})
	got := messages(r.collect(5))

	active := filepath.Join(dir, journaltest.FileName)
	archive := filepath.Join(dir, "test@0000000000000000000000000000000a-0000000000000001-0000000000000001.journal")
	if err := os.Rename(active, archive); err != nil {
		t.Fatal(err)
	}
	journaltest.WriteJournal(t, dir, kubelet(6, 10))
	bs := r.collect(5)
	got = append(got, messages(bs)...)
	lost := lostIn(bs)

	if err := os.Remove(archive); err != nil {
		t.Fatal(err)
	}
	journaltest.WriteJournal(t, dir, kubelet(11, 13))
	bs = r.collect(3)
	got = append(got, messages(bs)...)
	lost += lostIn(bs)
	r.quiet(300 * time.Millisecond)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if want := names("m", 1, 13); !slices.Equal(got, want) {
		t.Errorf("read %q, want %q", got, want)
	}
	if lost != 0 {
		t.Errorf("%d entries reported lost; nothing was", lost)
	}

	// A restart resumes in the new file after the last entry read.
	journaltest.WriteJournal(t, dir, kubelet(14, 14))
	r = startRun(t, cfg, last(bs))
	if got := messages(r.collect(1)); !slices.Equal(got, []string{"m14"}) {
		t.Errorf("after a restart: %q, want [m14]", got)
	}
	r.quiet(300 * time.Millisecond)
}

func lostIn(bs []source.Batch) (n uint64) {
	for _, b := range bs {
		n += b.Lost
	}
	return n
}
