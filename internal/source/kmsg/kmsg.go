// Package kmsg reads the kernel log ring through /dev/kmsg, one record per
// read, and resumes after the last sequence number processed in the same
// boot. A regular file in the device's place (fixture trees, captured hosts)
// is read once as text.
package kmsg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

// name is both the source name and the key of its position.
const name = "kmsg"

// readBufSize must hold the largest record (the kernel formats at most 8 KiB
// per record); a read into a smaller buffer fails with EINVAL rather than
// truncating.
const readBufSize = 16 << 10

// Config configures a Source.
type Config struct {
	// Root is the host root prefix; the device is host.Path(Root, "/dev/kmsg").
	// Default "/".
	Root string
	// Facilities keeps only records of these syslog facilities; empty keeps
	// all. Userspace writes to /dev/kmsg always have facility 1, so a filter
	// of {0} hides injected test messages. Records of unknown facility (bare
	// lines of a text file) always pass.
	Facilities []int
	// BootID is the running boot's ID. Sequence numbers restart at every
	// boot, so a saved position is honoured only when its BootID matches.
	BootID string
	// BootTime is when the boot started; record Time is BootTime + usec.
	BootTime time.Time
	// MaxBatch caps the records per batch. Default 512.
	MaxBatch int
	// Device, when set, is an already open /dev/kmsg to read instead of
	// opening Root's. systemd opens it for the sandboxed service
	// (StandardInput=file:/dev/kmsg) before dropping privileges: the
	// kernel checks CAP_SYSLOG (under dmesg_restrict) at open only, so the
	// daemon itself needs neither that capability nor access to /dev/kmsg.
	// Each Run reads its own duplicate from the start of the ring.
	Device *Device
}

// Source reads /dev/kmsg. It implements source.Source.
type Source struct {
	cfg Config
}

var _ source.Source = (*Source)(nil)

// New returns a Source for cfg, with defaults filled in.
func New(cfg Config) *Source {
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 512
	}
	return &Source{cfg: cfg}
}

// Name returns "kmsg".
func (s *Source) Name() string { return name }

// Run reads the ring from its beginning, skipping what start["kmsg"] says
// was already processed in this boot, and then follows new records until
// ctx ends. From a regular file it returns nil at end of file.
func (s *Source) Run(ctx context.Context, start map[string]source.Position, out chan<- source.Batch) error {
	if d := s.cfg.Device; d != nil {
		d.mu.Lock()
		defer d.mu.Unlock()
		f, err := d.reopen()
		if err != nil {
			return fmt.Errorf("kmsg: inherited %s: %w", s.cfg.Device.Name(), err)
		}
		return newCollector(&s.cfg, start[name]).runOpen(ctx, f, s.cfg.Device.Name(), out)
	}
	path := host.Path(s.cfg.Root, "/dev/kmsg")
	fi, err := os.Stat(path)
	if err != nil {
		return openError(path, err)
	}
	c := newCollector(&s.cfg, start[name])
	if fi.Mode().IsRegular() {
		return c.runText(ctx, path, out)
	}
	return c.runDevice(ctx, path, out)
}

func openError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("kmsg: %w: %w", source.ErrUnavailable, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("kmsg: %w (reading %s needs root, or CAP_SYSLOG when kernel.dmesg_restrict=1)", err, path)
	}
	return fmt.Errorf("kmsg: %w", err)
}

// seqTracker remembers the last sequence number handled, so that records
// read again after a restart are skipped and records that vanished between
// two reads (ring overwrite, unparsable records) are counted.
type seqTracker struct {
	last  uint64
	valid bool // last is meaningful
}

// next reports whether seq is new, and how many records were lost between
// the previous sequence number and seq.
func (t *seqTracker) next(seq uint64) (isNew bool, lost uint64) {
	if !t.valid {
		t.last, t.valid = seq, true
		return true, 0
	}
	if seq <= t.last {
		return false, 0
	}
	lost = seq - t.last - 1
	t.last = seq
	return true, lost
}

// collector turns entries into batches.
type collector struct {
	cfg   *Config
	seq   seqTracker
	recs  []source.Record
	lost  uint64
	moved bool // the position advanced since the last batch
}

func newCollector(cfg *Config, saved source.Position) *collector {
	c := &collector{cfg: cfg}
	if cfg.BootID != "" && saved.BootID == cfg.BootID {
		c.seq = seqTracker{last: saved.Seq, valid: true}
	}
	return c
}

func (c *collector) add(e Entry) {
	isNew, lost := c.seq.next(e.Seq)
	if !isNew {
		return
	}
	c.lost += lost
	// Filtered records still move the position, so that a restart does not
	// count them as lost if the ring overwrites them meanwhile.
	c.moved = true
	if len(c.cfg.Facilities) == 0 || e.Facility < 0 || slices.Contains(c.cfg.Facilities, e.Facility) {
		c.recs = append(c.recs, e.At(c.cfg.BootTime))
	}
}

func (c *collector) full() bool { return len(c.recs) >= c.cfg.MaxBatch }

func (c *collector) take() source.Batch {
	b := source.Batch{
		Source:   name,
		Records:  c.recs,
		Position: source.Position{BootID: c.cfg.BootID, Seq: c.seq.last},
		Lost:     c.lost,
	}
	c.recs, c.lost, c.moved = nil, 0, false
	return b
}

func send(ctx context.Context, out chan<- source.Batch, b source.Batch) bool {
	select {
	case out <- b:
		return true
	case <-ctx.Done():
		return false
	}
}

var errStopped = errors.New("stopped")

func (c *collector) runText(ctx context.Context, path string, out chan<- source.Batch) error {
	f, err := os.Open(path)
	if err != nil {
		return openError(path, err)
	}
	defer f.Close()
	err = ReadText(f, func(e Entry) error {
		if ctx.Err() != nil {
			return errStopped
		}
		c.add(e)
		if c.full() && !send(ctx, out, c.take()) {
			return errStopped
		}
		return nil
	})
	if errors.Is(err, errStopped) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w (in %s)", err, path)
	}
	if c.moved {
		send(ctx, out, c.take())
	}
	return nil
}

func (c *collector) runDevice(ctx context.Context, path string, out chan<- source.Batch) error {
	// A fresh open starts at the oldest record still in the ring, which is
	// what we want: boot-time failures are in there.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return openError(path, err)
	}
	return c.runOpen(ctx, f, path, out)
}

// runOpen follows the open device f until ctx ends, and closes it.
func (c *collector) runOpen(ctx context.Context, f *os.File, path string, out chan<- source.Batch) error {
	defer f.Close()
	// Closing the file wakes the poller, which is the only way to interrupt
	// a RawConn.Read that is waiting for the next record.
	defer context.AfterFunc(ctx, func() { f.Close() })()
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("kmsg: %s: %w", path, err)
	}
	buf := make([]byte, readBufSize)
	for {
		var derr error
		err := rc.Read(func(fd uintptr) bool {
			var wait bool
			wait, derr = c.drain(buf, func(p []byte) (int, error) {
				return syscall.Read(int(fd), p)
			})
			return !wait
		})
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = derr
		}
		if err != nil {
			return fmt.Errorf("kmsg: read %s: %w", path, err)
		}
		if !send(ctx, out, c.take()) {
			return nil
		}
	}
}

// drain reads records until the ring is empty (EAGAIN) or a batch is full.
// It returns wait when nothing was consumed, so that the caller waits for
// the device to become readable instead of sending an empty batch.
func (c *collector) drain(buf []byte, read func([]byte) (int, error)) (wait bool, err error) {
	for !c.full() {
		n, err := read(buf)
		switch {
		case err == syscall.EAGAIN:
			return !c.moved, nil
		case err == syscall.EINTR:
			continue
		case err == syscall.EPIPE:
			// Records were overwritten before we read them. The reader has
			// been moved to the oldest record left, and the sequence gap at
			// that record counts the loss exactly, so EPIPE is not counted
			// on its own (that would count the loss twice).
			continue
		case err != nil:
			return false, err
		case n == 0:
			return false, io.ErrUnexpectedEOF
		}
		// A record we cannot parse is dropped; the sequence gap it leaves
		// is counted as lost at the next good record.
		if e, err := ParseEntry(buf[:n]); err == nil {
			c.add(e)
		}
	}
	return false, nil
}
