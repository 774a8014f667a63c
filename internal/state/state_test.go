package state

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestRaiseMergesFatalRepeatsAndBoundsHistory(t *testing.T) {
	now := time.Unix(1000, 0)
	st := New("b", now)
	var ch Changes
	f := finding.Finding{Condition: finding.KernelReady, Reason: "R", Severity: finding.Fatal, Key: "k", Message: "m1", Detected: now, LastSeen: now, Count: 1}
	st.Raise(f, true, &ch)
	f.Message, f.LastSeen = "m2", now.Add(time.Minute)
	st.Raise(f, true, &ch)
	if len(st.Active) != 1 || st.Active[0].Count != 2 || st.Active[0].Message != "m2" || !st.Active[0].Detected.Equal(now) || len(ch.New) != 1 {
		t.Fatalf("active %+v new %d", st.Active, len(ch.New))
	}
	if len(st.Outbox) != 0 {
		t.Fatal("a Fatal finding went to the event outbox")
	}
	for i := 0; i < MaxRecent+10; i++ {
		st.Raise(finding.Finding{Condition: finding.KernelReady, Reason: "W", Severity: finding.Warning, Message: fmt.Sprint("w", i), Detected: now}, true, &ch)
	}
	if len(st.Recent) != MaxRecent || st.Recent[len(st.Recent)-1].ID != st.NextID {
		t.Fatalf("recent %d, last id %d next %d", len(st.Recent), st.Recent[len(st.Recent)-1].ID, st.NextID)
	}
	if len(st.Outbox) != MaxRecent+10 || st.OutboxDropped != 0 {
		t.Fatalf("outbox %d dropped %d", len(st.Outbox), st.OutboxDropped)
	}
	st.Ack(st.Outbox[0].ID, st.Outbox[1].ID)
	if len(st.Outbox) != MaxRecent+8 {
		t.Fatalf("ack left %d", len(st.Outbox))
	}
}

func TestSaveIsAtomicAndReadRejectsOtherVersions(t *testing.T) {
	dir := t.TempDir()
	s, st, err := Open(dir, "b", time.Now(), discard())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(dir, "b", time.Now(), discard()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open of a locked dir: %v", err)
	}
	var ch Changes
	st.Raise(finding.Finding{Condition: finding.KernelReady, Reason: "R", Severity: finding.Fatal, Detected: time.Now()}, false, &ch)
	if err := s.Save(st, time.Now()); err != nil {
		t.Fatal(err)
	}
	tmp, _ := filepath.Glob(filepath.Join(dir, ".state.json.tmp-*"))
	if len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
	got, err := Read(dir)
	if err != nil || len(got.Active) != 1 {
		t.Fatalf("read back: %v %+v", err, got)
	}
	s.Close()

	os.WriteFile(filepath.Join(dir, FileName), []byte(`{"version": 99}`), 0o640)
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Fatalf("newer schema: %v", err)
	}
	// The daemon starts clean and keeps the unreadable file for inspection.
	s, st, err = Open(dir, "b", time.Now(), discard())
	if err != nil || len(st.Active) != 0 {
		t.Fatalf("open after corruption: %v %+v", err, st)
	}
	s.Close()
	aside, _ := filepath.Glob(filepath.Join(dir, FileName+".corrupt-*"))
	if len(aside) != 1 {
		t.Fatalf("moved aside: %v", aside)
	}
}

func TestWarningFromTwoSourcesIsOneFinding(t *testing.T) {
	now := time.Unix(1000, 0)
	st := New("b", now)
	var ch Changes
	xid := finding.Finding{Condition: finding.AcceleratedHardwareReady, Reason: "NvidiaXID13Warning", Severity: finding.Warning, Key: "0000:3b:00/13", Source: "kmsg", Detected: now, Count: 1}
	st.Raise(xid, true, &ch)
	fromNVML := xid
	fromNVML.Source, fromNVML.Detected = "nvml", now.Add(2*time.Second)
	st.Raise(fromNVML, true, &ch)
	if len(st.Recent) != 1 || st.Recent[0].Count != 2 || len(st.Outbox) != 1 {
		t.Fatalf("recent %+v outbox %d", st.Recent, len(st.Outbox))
	}
	again := xid
	again.Detected = now.Add(3 * time.Second) // the same source again is a new occurrence…
	st.Raise(again, true, &ch)
	later := fromNVML
	later.Detected = now.Add(time.Hour)
	st.Raise(later, true, &ch)
	// …committed when its coalescing window ends.
	st.FlushCoalesced(time.Now().Add(CoalesceWindow), true, &ch)
	if len(st.Recent) != 3 {
		t.Fatalf("recent %d, want 3", len(st.Recent))
	}
}
