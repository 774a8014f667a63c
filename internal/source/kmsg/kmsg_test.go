package kmsg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

func TestSeqTracker(t *testing.T) {
	var tr seqTracker
	steps := []struct {
		seq    uint64
		isNew  bool
		lost   uint64
		wantAt uint64 // tr.last afterwards
	}{
		{seq: 100, isNew: true, wantAt: 100}, // first record: nothing to compare with
		{seq: 101, isNew: true, wantAt: 101},
		{seq: 101, isNew: false, wantAt: 101}, // read again
		{seq: 50, isNew: false, wantAt: 101},  // older
		{seq: 105, isNew: true, lost: 3, wantAt: 105},
		{seq: 1<<64 - 1, isNew: true, lost: 1<<64 - 1 - 105 - 1, wantAt: 1<<64 - 1},
	}
	for i, s := range steps {
		isNew, lost := tr.next(s.seq)
		if isNew != s.isNew || lost != s.lost || tr.last != s.wantAt {
			t.Errorf("step %d next(%d) = %v, %d (last %d); want %v, %d (last %d)",
				i, s.seq, isNew, lost, tr.last, s.isNew, s.lost, s.wantAt)
		}
	}
}

func TestCollectorResume(t *testing.T) {
	cfg := &Config{BootID: "b1", MaxBatch: 100}
	seqs := []uint64{8, 9, 10, 13, 14}
	tests := []struct {
		name  string
		saved source.Position
		want  []uint64
		lost  uint64
	}{
		{"first start", source.Position{}, seqs, 2}, // 11 and 12 are gone
		{"same boot skips and counts the gap", source.Position{BootID: "b1", Seq: 10}, []uint64{13, 14}, 2},
		{"same boot, saved before the ring", source.Position{BootID: "b1", Seq: 5}, seqs, 2 + 2},
		{"other boot reads everything", source.Position{BootID: "b0", Seq: 12}, seqs, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCollector(cfg, tt.saved)
			for _, s := range seqs {
				c.add(entry(6, 0, s, 0, "-", "m", nil))
			}
			b := c.take()
			if got := recSeqs(b.Records); fmt.Sprint(got) != fmt.Sprint(tt.want) || b.Lost != tt.lost {
				t.Errorf("got seqs %v lost %d, want %v lost %d", got, b.Lost, tt.want, tt.lost)
			}
			if b.Position != (source.Position{BootID: "b1", Seq: 14}) || b.Source != "kmsg" {
				t.Errorf("batch %q position %+v", b.Source, b.Position)
			}
		})
	}
}

// fakeRing replays read(2) results for drain.
type fakeRing struct {
	steps []any // string record, or syscall.Errno
	reads int
}

func (f *fakeRing) read(p []byte) (int, error) {
	f.reads++
	if len(f.steps) == 0 {
		return 0, syscall.EAGAIN
	}
	s := f.steps[0]
	f.steps = f.steps[1:]
	if errno, ok := s.(syscall.Errno); ok {
		return 0, errno
	}
	return copy(p, s.(string)), nil
}

func TestDrainLossAccounting(t *testing.T) {
	c := newCollector(&Config{BootID: "b", MaxBatch: 100, Facilities: []int{0}}, source.Position{BootID: "b", Seq: 4})
	ring := &fakeRing{steps: []any{
		"6,3,1,-;already processed before the restart\n",
		"6,5,1,-;five\n",
		syscall.EPIPE, // 6..8 overwritten
		"6,9,1,-;nine\n",
		"garbage",            // seq 10, unparsable
		syscall.EINTR,        // retried
		"6,11,1,-;eleven\n",  // lost 1 (the garbage)
		"14,12,1,-;user\n",   // facility 1: filtered, but moves the position
		"6,13,1,-;thirteen",  // no loss
		syscall.EAGAIN,       // ring empty
		"6,14,1,-;next time", // not reached
	}}
	buf := make([]byte, readBufSize)
	wait, err := c.drain(buf, ring.read)
	if err != nil || wait {
		t.Fatalf("drain = %v, %v; want false, nil", wait, err)
	}
	b := c.take()
	if got := recSeqs(b.Records); fmt.Sprint(got) != "[5 9 11 13]" {
		t.Errorf("records %v, want [5 9 11 13]", got)
	}
	if b.Lost != 3+1 {
		t.Errorf("lost %d, want 4 (3 overwritten, 1 unparsable)", b.Lost)
	}
	if b.Position.Seq != 13 {
		t.Errorf("position %+v, want seq 13", b.Position)
	}

	// Next wake-up: a record is there.
	if wait, err := c.drain(buf, ring.read); err != nil || wait {
		t.Fatalf("second drain = %v, %v", wait, err)
	}
	if b := c.take(); len(b.Records) != 1 || b.Lost != 0 {
		t.Errorf("second batch %+v", b)
	}
	// Nothing new: wait for the device without a batch.
	if wait, err := c.drain(buf, ring.read); err != nil || !wait {
		t.Fatalf("empty drain = %v, %v; want wait", wait, err)
	}
	// Only a filtered record: a batch that just moves the position.
	ring.steps = []any{"14,15,1,-;user"}
	if wait, err := c.drain(buf, ring.read); err != nil || wait {
		t.Fatalf("filtered drain = %v, %v", wait, err)
	}
	if b := c.take(); len(b.Records) != 0 || b.Position.Seq != 15 {
		t.Errorf("filtered-only batch %+v, want no records at seq 15", b)
	}
	// Other read errors end the drain.
	ring.steps = []any{syscall.EIO}
	if _, err := c.drain(buf, ring.read); !errors.Is(err, syscall.EIO) {
		t.Errorf("drain error %v, want EIO", err)
	}
}

func TestDrainStopsAtMaxBatch(t *testing.T) {
	c := newCollector(&Config{MaxBatch: 2}, source.Position{})
	ring := &fakeRing{steps: []any{"6,1,1,-;a", "6,2,1,-;b", "6,3,1,-;c"}}
	if wait, err := c.drain(make([]byte, readBufSize), ring.read); err != nil || wait {
		t.Fatalf("drain = %v, %v", wait, err)
	}
	if ring.reads != 2 || len(c.take().Records) != 2 {
		t.Errorf("read %d records for a batch of 2", ring.reads)
	}
}

func TestOpenError(t *testing.T) {
	err := openError("/dev/kmsg", &fs.PathError{Op: "stat", Path: "/dev/kmsg", Err: syscall.ENOENT})
	if !errors.Is(err, source.ErrUnavailable) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ENOENT: %v does not wrap ErrUnavailable and ErrNotExist", err)
	}
	err = openError("/dev/kmsg", &fs.PathError{Op: "open", Path: "/dev/kmsg", Err: syscall.EACCES})
	if errors.Is(err, source.ErrUnavailable) || !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "CAP_SYSLOG") {
		t.Errorf("EACCES: %v", err)
	}
}

func TestRunMissingDevice(t *testing.T) {
	s := New(Config{Root: t.TempDir()})
	if s.Name() != "kmsg" {
		t.Errorf("Name() = %q", s.Name())
	}
	err := s.Run(context.Background(), nil, make(chan source.Batch))
	if !errors.Is(err, source.ErrUnavailable) {
		t.Fatalf("Run without dev/kmsg = %v, want ErrUnavailable", err)
	}
}

const fixture = `6,0,0,-;Linux version 6.1.0-18-amd64
 SUBSYSTEM=kernel
4,1,1500000,-;pci 0000:00:1e.0: BAR 0: failed to assign
12,2,2000000,-;injected by userspace
3,5,3000000,-;EXT4-fs error (device nvme0n1p1): ext4_find_entry
captured without a prefix
`

func TestRunFixtureTree(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "dev", "kmsg"), []byte(fixture), 0o644); err != nil {
		t.Fatal(err)
	}
	boot := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(Config{Root: root, BootID: "b1", BootTime: boot, MaxBatch: 2})

	batches := runFile(t, s, nil)
	if len(batches) != 3 {
		t.Fatalf("got %d batches, want 3 (MaxBatch 2): %+v", len(batches), batches)
	}
	var recs []source.Record
	var lost uint64
	for _, b := range batches {
		recs = append(recs, b.Records...)
		lost += b.Lost
	}
	if got := recSeqs(recs); fmt.Sprint(got) != "[0 1 2 5 6]" {
		t.Fatalf("seqs %v", got)
	}
	if lost != 2 {
		t.Errorf("lost %d, want 2 (seqs 3 and 4)", lost)
	}
	if r := recs[0]; r.Fields["SUBSYSTEM"] != "kernel" || r.Kind != source.KindKmsg || !r.Time.Equal(boot) {
		t.Errorf("first record %+v", r)
	}
	if r := recs[1]; r.Priority != 4 || r.Facility != 0 || !r.Time.Equal(boot.Add(1500*time.Millisecond)) {
		t.Errorf("second record %+v", r)
	}
	if r := recs[4]; r.Message != "captured without a prefix" || r.Priority != -1 || !r.Time.Equal(boot.Add(3*time.Second)) {
		t.Errorf("bare record %+v", r)
	}
	if p := batches[2].Position; p != (source.Position{BootID: "b1", Seq: 6}) {
		t.Errorf("final position %+v", p)
	}
	if p := batches[0].Position; p.Seq != 1 {
		t.Errorf("first batch position %+v, want seq 1", p)
	}

	// Resume in the same boot: only what follows seq 2, nothing lost but the gap.
	batches = runFile(t, s, map[string]source.Position{"kmsg": {BootID: "b1", Seq: 2}})
	if len(batches) != 1 || fmt.Sprint(recSeqs(batches[0].Records)) != "[5 6]" || batches[0].Lost != 2 {
		t.Errorf("resume after 2: %+v", batches)
	}
	// Resume at the end: nothing to send.
	if batches = runFile(t, s, map[string]source.Position{"kmsg": {BootID: "b1", Seq: 6}}); len(batches) != 0 {
		t.Errorf("resume at the end: %+v", batches)
	}
	// A position of another boot is ignored.
	if batches = runFile(t, s, map[string]source.Position{"kmsg": {BootID: "b0", Seq: 6}}); len(batches) != 3 {
		t.Errorf("other boot: %d batches, want all 3", len(batches))
	}

	// Kernel facility only: the userspace record is dropped, the bare one kept.
	s = New(Config{Root: root, BootID: "b1", BootTime: boot, Facilities: []int{0}})
	batches = runFile(t, s, nil)
	if len(batches) != 1 || fmt.Sprint(recSeqs(batches[0].Records)) != "[0 1 5 6]" || batches[0].Position.Seq != 6 {
		t.Errorf("facility 0: %+v", batches)
	}
}

// runFile runs a Source over a regular file, which returns at end of file.
func runFile(t *testing.T, s *Source, start map[string]source.Position) []source.Batch {
	t.Helper()
	out := make(chan source.Batch, 100)
	if err := s.Run(context.Background(), start, out); err != nil {
		t.Fatal(err)
	}
	close(out)
	var bs []source.Batch
	for b := range out {
		bs = append(bs, b)
	}
	return bs
}

func TestRunFileCancelled(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	os.WriteFile(filepath.Join(root, "dev", "kmsg"), []byte(fixture), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Nobody reads out: Run must still return, and nil.
	if err := New(Config{Root: root, MaxBatch: 1}).Run(ctx, nil, make(chan source.Batch)); err != nil {
		t.Fatalf("Run after cancel = %v", err)
	}
}

// TestDevice injects records into the real ring and reads them back.
func TestDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to write /dev/kmsg")
	}
	f, err := os.OpenFile("/dev/kmsg", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("cannot open /dev/kmsg read-write: %v", err)
	}
	f.Close()
	bootID, err := host.BootID("/")
	if err != nil {
		t.Fatal(err)
	}
	bootTime, err := host.BootTime("/")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("path", func(t *testing.T) {
		testDevice(t, New(Config{BootID: bootID, BootTime: bootTime, MaxBatch: 64}), bootID, bootTime)
	})
	t.Run("inherited", func(t *testing.T) {
		// As systemd hands it over: opened read-only once, by someone else.
		f, err := os.Open("/dev/kmsg")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		dev := &Device{f: f}
		testDevice(t, New(Config{BootID: bootID, BootTime: bootTime, MaxBatch: 64, Device: dev}), bootID, bootTime)
		// Both Runs above read duplicates of the inherited file, which is
		// still open; a third Run with nothing saved starts again at the
		// oldest record, as a fresh open would, and so sees the ring's first
		// record even though the shared read position had passed it.
		s := New(Config{BootID: bootID, BootTime: bootTime, MaxBatch: 64, Device: dev})
		var firstSeq uint64
		runDevice(t, s, source.Position{BootID: bootID}, func(b source.Batch) bool {
			if firstSeq == 0 && len(b.Records) > 0 {
				firstSeq = b.Records[0].Seq
			}
			return true
		}, nil)
		var oldest uint64
		runDevice(t, New(Config{BootID: bootID, BootTime: bootTime, MaxBatch: 64}), source.Position{BootID: bootID}, func(b source.Batch) bool {
			oldest = b.Records[0].Seq
			return true
		}, nil)
		// Records only leave the ring (other writers may push the oldest
		// out meanwhile), so a rewound Run starts at or before what a later
		// fresh open sees first; one that did not rewind would start after.
		if firstSeq > oldest {
			t.Errorf("inherited device's third Run started at seq %d, after a later fresh open's first record %d", firstSeq, oldest)
		}
	})
}

// testDevice checks that s reads a record injected into /dev/kmsg, and that
// a second Run from the saved position delivers only what is newer.
func testDevice(t *testing.T, s *Source, bootID string, bootTime time.Time) {

	token := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	first := "nodehealthd-kmsg-test " + token + "-1"
	writeKmsg(t, "<4>"+first)

	// A saved position of this boot at seq 0: the whole ring after it is new.
	var got source.Record
	pos := runDevice(t, s, source.Position{BootID: bootID}, func(b source.Batch) bool {
		for _, r := range b.Records {
			if r.Message == first {
				got = r
				return true
			}
		}
		return false
	}, nil)
	if got.Priority != 4 || got.Facility != 1 || got.Kind != source.KindKmsg || got.Seq == 0 {
		t.Errorf("token record %+v, want priority 4 facility 1", got)
	}
	if got.Time.Before(bootTime) || got.Time.After(time.Now().Add(time.Hour)) {
		t.Errorf("token record time %v, boot %v", got.Time, bootTime)
	}
	t.Logf("token at seq %d, position %+v", got.Seq, pos)
	if pos.BootID != bootID || pos.Seq < got.Seq {
		t.Errorf("position %+v after record seq %d", pos, got.Seq)
	}

	// Restart from that position; a second token written afterwards must
	// arrive, the first must not arrive again.
	second := "nodehealthd-kmsg-test " + token + "-2"
	runDevice(t, s, pos, func(b source.Batch) bool {
		for _, r := range b.Records {
			if r.Seq <= pos.Seq || r.Message == first {
				t.Errorf("delivered again after restart at %d: %+v", pos.Seq, r)
			}
			if r.Message == second {
				return true
			}
		}
		return false
	}, func() {
		// Give Run time to skip the ring and wait in the poller, so that
		// the record arrives through a wake-up rather than the first drain.
		time.Sleep(300 * time.Millisecond)
		writeKmsg(t, "<3>"+second)
	})
}

func TestInherited(t *testing.T) {
	// Standard input is put back afterwards (or closed again, if the test
	// binary was started without one).
	saved, err := unix.Dup(0)
	defer func() {
		if err != nil {
			unix.Close(0)
			return
		}
		_ = unix.Dup2(saved, 0)
		unix.Close(saved)
	}()
	for _, c := range []struct {
		path string
		want bool
	}{{"/dev/null", false}, {"/dev/kmsg", true}} {
		fd, err := unix.Open(c.path, unix.O_RDONLY, 0)
		if err != nil {
			t.Skipf("cannot open %s: %v", c.path, err)
		}
		// Without a standard input the open itself lands on 0.
		if fd != 0 {
			err = unix.Dup2(fd, 0)
			unix.Close(fd)
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := Inherited() != nil; got != c.want {
			t.Errorf("standard input %s: Inherited() found a kmsg device: %v, want %v", c.path, got, c.want)
		}
	}
}

// runDevice runs s on /dev/kmsg from saved, calls started once Run is
// running, and stops when done says so; it returns the position of that
// batch and checks that cancelling makes Run return nil promptly.
func runDevice(t *testing.T, s *Source, saved source.Position, done func(source.Batch) bool, started func()) source.Position {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan source.Batch)
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, map[string]source.Position{"kmsg": saved}, out) }()
	if started != nil {
		started()
	}
	timeout := time.After(30 * time.Second)
	var pos source.Position
	for found := false; !found; {
		select {
		case b := <-out:
			if b.Source != "kmsg" || b.Position.BootID != saved.BootID || b.Position.Seq < pos.Seq {
				t.Fatalf("bad batch %q %+v after %+v", b.Source, b.Position, pos)
			}
			pos, found = b.Position, done(b)
		case err := <-errc:
			t.Fatalf("Run returned early: %v", err)
		case <-timeout:
			t.Fatal("record not read within 30s")
		}
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run after cancel = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
	}
	return pos
}

// writeKmsg opens /dev/kmsg for each message because the kernel's
// printk_devkmsg rate limit counts per open file.
func writeKmsg(t *testing.T, msg string) {
	t.Helper()
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(msg + "\n"); err != nil {
		t.Fatal(err)
	}
}

func recSeqs(rs []source.Record) []uint64 {
	var s []uint64
	for _, r := range rs {
		s = append(s, r.Seq)
	}
	return s
}
