package journald

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

type entry struct {
	msg    string
	pri    journal.Priority
	fields map[string]string
}

type capture struct {
	entries []entry
	err     error
}

func (c *capture) send(msg string, pri journal.Priority, fields map[string]string) error {
	c.entries = append(c.entries, entry{msg, pri, fields})
	return c.err
}

// sink returns a sink sending to c, and a function that waits until it
// has sent everything queued so far.
func (c *capture) sink(t *testing.T) (*sink, func()) {
	s := newSink(c.send, 64)
	return s, func() {
		t.Helper()
		if !s.q.Flush(5 * time.Second) {
			t.Fatal("queue not flushed")
		}
	}
}

func TestHandlerEntries(t *testing.T) {
	var c capture
	q, flush := c.sink(t)
	log := slog.New(newHandler(q, slog.LevelInfo, io.Discard))
	log.Debug("not shown")
	log.With("source", "kmsg").WithGroup("batch").Warn("records lost", "lost", 3, "note", "ring buffer overwritten",
		slog.Group("pos", "seq", 12), slog.Time("at", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	log.Error("cannot save state", "err", errors.New("disk full"), "message", "sneaky", "nodehealth_reason", "Fake", "", "dropped")
	flush()
	if len(c.entries) != 2 {
		t.Fatalf("got %d entries, want 2 (debug filtered out)", len(c.entries))
	}
	w := c.entries[0]
	if want := `records lost source=kmsg batch.lost=3 batch.note="ring buffer overwritten" batch.pos.seq=12 batch.at=2026-01-02T03:04:05Z`; w.msg != want {
		t.Errorf("MESSAGE\n got %s\nwant %s", w.msg, want)
	}
	if w.pri != journal.PriWarning {
		t.Errorf("priority %d, want %d", w.pri, journal.PriWarning)
	}
	for k, v := range map[string]string{"SOURCE": "kmsg", "BATCH_LOST": "3", "BATCH_POS_SEQ": "12", "SYSLOG_IDENTIFIER": "nodehealthd"} {
		if w.fields[k] != v {
			t.Errorf("field %s=%q, want %q (fields %v)", k, w.fields[k], v, w.fields)
		}
	}
	if !strings.HasSuffix(w.fields["CODE_FILE"], "journald_test.go") || w.fields["CODE_FUNC"] == "" || w.fields["CODE_LINE"] == "" {
		t.Errorf("code location missing: %v", w.fields)
	}
	e := c.entries[1]
	if e.pri != journal.PriErr || e.fields["ERR"] != "disk full" {
		t.Errorf("error entry: pri %d fields %v", e.pri, e.fields)
	}
	// An attribute must not overwrite the entry's message or pose as a
	// finding (the journal source skips entries with NODEHEALTH_REASON).
	if e.fields["ATTR_MESSAGE"] != "sneaky" || e.fields["ATTR_NODEHEALTH_REASON"] != "Fake" {
		t.Errorf("reserved names not renamed: %v", e.fields)
	}
	if _, ok := e.fields["NODEHEALTH_REASON"]; ok {
		t.Errorf("log attribute became NODEHEALTH_REASON")
	}
}

func TestHandlerFallback(t *testing.T) {
	c := capture{err: errors.New("journal socket gone")}
	var buf bytes.Buffer
	q, flush := c.sink(t)
	slog.New(newHandler(q, slog.LevelInfo, &buf)).Info("hello", "k", "v")
	flush()
	if got := buf.String(); got != "INFO hello k=v\n" {
		t.Errorf("fallback wrote %q", got)
	}
}

func TestFieldName(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)
	for _, tc := range []struct {
		path []string
		want string
	}{
		{[]string{"err"}, "ERR"},
		{[]string{"retry_in"}, "RETRY_IN"},
		{[]string{"probe", "name"}, "PROBE_NAME"},
		{[]string{"state-dir"}, "STATE_DIR"},
		{[]string{"_private"}, "PRIVATE"},
		{[]string{"9lives"}, "ATTR_9LIVES"},
		{[]string{"ünï"}, "N_"},
		{[]string{"priority"}, "ATTR_PRIORITY"},
		{[]string{"NODEHEALTH_ID"}, "ATTR_NODEHEALTH_ID"},
		{[]string{""}, "ATTR_"},
		{[]string{strings.Repeat("a", 80)}, strings.Repeat("A", 64)},
	} {
		got := FieldName(tc.path)
		if got != tc.want {
			t.Errorf("FieldName(%q) = %q, want %q", tc.path, got, tc.want)
		}
		if !valid.MatchString(got) {
			t.Errorf("FieldName(%q) = %q is not a valid journal field name", tc.path, got)
		}
	}
}

func TestMessageID(t *testing.T) {
	// Golden value, the same as Python's
	// uuid.uuid5(uuid.UUID("99351c80-7658-48b3-be9c-cbcdaa7f59a7"), "finding/SoftLockup").hex.
	// These IDs are an interface (alerts, journalctl filters): a change
	// here breaks every operator's filters.
	if got, want := MessageID("finding", "SoftLockup"), "12b85c922de55b85a2668c093273b230"; got != want {
		t.Errorf("MessageID(finding, SoftLockup) = %s, want %s", got, want)
	}
	seen := map[string]bool{}
	for _, ev := range []string{EventFinding, EventCleared, EventCondition} {
		for _, r := range []string{"SoftLockup", "ForkFailedOutOfPIDs", "KernelReady=False"} {
			id := MessageID(ev, r)
			if !regexp.MustCompile(`^[0-9a-f]{12}5[0-9a-f]{3}[89ab][0-9a-f]{15}$`).MatchString(id) {
				t.Errorf("MessageID(%s, %s) = %s: not a v5 UUID in sd-id128 form", ev, r, id)
			}
			if seen[id] {
				t.Errorf("MessageID(%s, %s) = %s collides", ev, r, id)
			}
			seen[id] = true
		}
	}
}

func TestPublisherEntries(t *testing.T) {
	var c capture
	q, flush := c.sink(t)
	p := newPublisher(q, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	fatal := finding.Finding{ID: 7, Condition: finding.KernelReady, Reason: "ForkFailedOutOfPIDs", Severity: finding.Fatal,
		Message: "A fork failed", Rule: "ForkFailedOutOfPIDs", Source: "journal", Detected: t0, LastSeen: t0, Count: 1}
	warn := finding.Finding{ID: 8, Condition: finding.KernelReady, Reason: "AppCrash", Severity: finding.Warning,
		Message: `Process "x" crashed`, Key: "x", Rule: "AppCrash", Source: "kmsg", Detected: t0, LastSeen: t0, Count: 1}
	down := map[string]condition.Condition{
		finding.KernelReady:  {Type: finding.KernelReady, Status: condition.False, Reason: "ForkFailedOutOfPIDs", Message: "m"},
		finding.StorageReady: {Type: finding.StorageReady, Status: condition.True, Reason: "DiskIsReady"},
	}
	// At start only the False condition is logged, not the healthy one.
	p.Publish(publish.Update{Time: t0, New: []finding.Finding{fatal, warn}, Conditions: down, ConditionsChanged: true})
	// Unchanged conditions are not repeated.
	p.Publish(publish.Update{Time: t0, Conditions: down, ConditionsChanged: true})
	up := map[string]condition.Condition{
		finding.KernelReady:  {Type: finding.KernelReady, Status: condition.True, Reason: "KernelIsReady"},
		finding.StorageReady: down[finding.StorageReady],
	}
	p.Publish(publish.Update{Time: t0.Add(90 * time.Second), Cleared: []state.Cleared{{Finding: fatal, At: t0.Add(90 * time.Second), By: "operator"}},
		Conditions: up, ConditionsChanged: true})
	flush()

	want := []struct {
		pri    journal.Priority
		msg    string
		fields map[string]string
	}{
		{journal.PriErr, "Fatal ForkFailedOutOfPIDs on KernelReady: A fork failed (source journal, finding #7)", map[string]string{
			FieldEvent: "finding", FieldReason: "ForkFailedOutOfPIDs", FieldCondition: "KernelReady", FieldSeverity: "Fatal",
			FieldSource: "journal", FieldID: "7", FieldRule: "ForkFailedOutOfPIDs", FieldCount: "1", FieldDetected: "2026-11-25T10:00:00Z",
			"MESSAGE_ID": MessageID("finding", "ForkFailedOutOfPIDs"), "SYSLOG_IDENTIFIER": "nodehealthd"}},
		{journal.PriWarning, `Warning AppCrash on KernelReady [x]: Process "x" crashed (source kmsg, finding #8)`, map[string]string{
			FieldReason: "AppCrash", FieldSeverity: "Warning", FieldKey: "x", "MESSAGE_ID": MessageID("finding", "AppCrash")}},
		{journal.PriErr, "KernelReady=False (ForkFailedOutOfPIDs): m", map[string]string{
			FieldEvent: "condition", FieldCondition: "KernelReady", FieldStatus: "False", FieldReason: "ForkFailedOutOfPIDs",
			"MESSAGE_ID": MessageID("condition", "KernelReady=False")}},
		{journal.PriNotice, "Cleared Fatal ForkFailedOutOfPIDs on KernelReady by operator after 1m30s: A fork failed (finding #7)", map[string]string{
			FieldEvent: "cleared", FieldClearedBy: "operator", FieldReason: "ForkFailedOutOfPIDs", "MESSAGE_ID": MessageID("cleared", "ForkFailedOutOfPIDs")}},
		{journal.PriNotice, "KernelReady=True (KernelIsReady): ", map[string]string{FieldStatus: "True", FieldReason: "KernelIsReady"}},
	}
	if len(c.entries) != len(want) {
		for _, e := range c.entries {
			t.Log(e.msg)
		}
		t.Fatalf("got %d entries, want %d", len(c.entries), len(want))
	}
	for i, w := range want {
		e := c.entries[i]
		if e.msg != w.msg || e.pri != w.pri {
			t.Errorf("entry %d: %d %q\n            want %d %q", i, e.pri, e.msg, w.pri, w.msg)
		}
		for k, v := range w.fields {
			if e.fields[k] != v {
				t.Errorf("entry %d: %s=%q, want %q", i, k, e.fields[k], v)
			}
		}
		// What keeps the daemon from reading its own entries back.
		if e.fields["SYSLOG_IDENTIFIER"] != Identifier || e.fields[FieldReason] == "" {
			t.Errorf("entry %d lacks the self-ingestion markers: %v", i, e.fields)
		}
		if _, ok := e.fields[FieldKey]; ok && e.fields[FieldKey] == "" {
			t.Errorf("entry %d has an empty key field", i)
		}
	}
}

func TestPublisherReplayIsMarked(t *testing.T) {
	var c capture
	q, flush := c.sink(t)
	p := newPublisher(q, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	f := finding.Finding{ID: 9, Condition: finding.KernelReady, Reason: "SoftLockup", Severity: finding.Warning, Message: "m", Source: "kmsg", Detected: t0}
	p.Replay([]finding.Finding{f}, []state.Cleared{{Finding: f, At: t0.Add(time.Minute), By: "expiry"}})
	p.Publish(publish.Update{Time: t0, New: []finding.Finding{f}})
	flush()
	if len(c.entries) != 3 {
		t.Fatalf("got %d entries, want 3", len(c.entries))
	}
	for i, e := range c.entries[:2] {
		if e.fields[FieldReplay] != "1" || !strings.HasSuffix(e.msg, " (replayed)") {
			t.Errorf("replayed entry %d not marked: %q %v", i, e.msg, e.fields)
		}
	}
	if e := c.entries[2]; e.fields[FieldReplay] != "" || strings.Contains(e.msg, "replayed") {
		t.Errorf("a live entry is marked as a replay: %q %v", e.msg, e.fields)
	}
}

// A journald that stops reading (stuck on a hung disk, stopped) fills its
// socket, and a send to it blocks. Publishing and logging must go on
// without waiting: what the queue cannot hold is dropped and counted, and
// once journald reads again the queued entries arrive, with one entry
// that tells how many were dropped. The old code sent from the
// caller and blocked on the first full socket.
func TestStalledJournaldBlocksNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socket")
	journald, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer journald.Close()
	// Sent the way go-systemd's journal.Send sends, minus the protocol.
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	send := func(msg string, _ journal.Priority, fields map[string]string) error {
		_, _, err := conn.WriteMsgUnix([]byte(msg+" "+fields["DROPPED"]), nil, &net.UnixAddr{Name: path, Net: "unixgram"})
		return err
	}
	q := newSink(send, 16)
	log := slog.New(newHandler(q, slog.LevelInfo, io.Discard))
	p := newPublisher(q, log)

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			p.Publish(publish.Update{New: []finding.Finding{{ID: uint64(i), Reason: "R", Message: strconv.Itoa(i)}}})
			log.Warn("a log line", "i", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publishing and logging wait for a journald that does not read")
	}
	dropped := q.q.Dropped()
	if dropped == 0 {
		t.Fatal("nothing dropped: the socket never filled, and the test proves nothing")
	}

	// journald reads again.
	got := make(chan string, 1024)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := journald.Read(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	if !q.q.Flush(10 * time.Second) {
		t.Fatal("queue not flushed once journald reads")
	}
	q.put("last", journal.PriInfo, map[string]string{}, nil)
	var received []string
	for timeout := time.After(10 * time.Second); len(received) == 0 || received[len(received)-1] != "last "; {
		select {
		case m := <-got:
			received = append(received, m)
		case <-timeout:
			t.Fatalf("%d entries received, not the last: %q", len(received), received)
		}
	}
	// Drops are told after the next entry that gets through, so a notice
	// can come before the socket fills as well as after it drains.
	var notices []string
	told := 0
	for _, m := range received {
		if strings.Contains(m, "were dropped") {
			notices = append(notices, m)
			n, _ := strconv.Atoi(m[strings.LastIndexByte(m, ' ')+1:])
			told += n
		}
	}
	if told != int(dropped) {
		t.Errorf("drop notices %q tell %d, want %d", notices, told, dropped)
	}
	if want := 400 - int(dropped) + len(notices) + 1; len(received) != want {
		t.Errorf("%d entries received, want %d (400 - %d dropped + %d notices + the last)", len(received), want, dropped, len(notices))
	}
}
