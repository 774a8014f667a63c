package journal

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/sdjournal"

	"github.com/nodehealthd/nodehealthd/internal/source"
)

// reader is the state of one Run after the journal has been positioned.
type reader struct {
	j      *sdjournal.Journal
	cfg    *Config
	out    chan<- source.Batch
	cursor string // position after the last batch sent
	skip   string // cursor of an already processed entry that Next may land on first
	lost   uint64 // to report with the next batch
	// truncated counts messages cut to source.MaxMessageBytes, to report
	// with the next batch; longWarned says the log has been told.
	truncated  uint64
	longWarned bool

	fast *fastFields // nil: read fields one by one through sdjournal
	fdw  *fdWaiter   // nil: wait with sd_journal_wait

	recs []source.Record
	read int // entries consumed since the last batch, own ones included
}

// trimSpace is the trailing white space cut from messages (journald keeps
// the newline of printf-style logging).
const trimSpace = " \t\r\n\v\f"

func (r *reader) run(ctx context.Context) error {
	for ctx.Err() == nil {
		n, err := r.j.Next()
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		if n == 0 {
			if r.read > 0 || r.lost > 0 {
				if err := r.flush(ctx); err != nil {
					return err
				}
			}
			r.wait(ctx)
			continue
		}
		if r.skip != "" {
			skip := r.j.TestCursor(r.skip) == nil
			r.skip = ""
			if skip {
				continue
			}
		}
		r.read++
		if rec, own := r.record(); !own {
			r.recs = append(r.recs, rec)
		}
		if r.read >= r.cfg.MaxBatch {
			if err := r.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// record reads the current entry; own reports the daemon's own entries.
func (r *reader) record() (rec source.Record, own bool) {
	ok := false
	if r.fast != nil {
		rec, own, ok = r.fast.record()
	}
	if !ok {
		rec, own = r.slowRecord()
	}
	var cut bool
	if rec.Message, cut = source.CutMessage(rec.Message); cut && !own {
		r.truncated++
		if !r.longWarned {
			r.longWarned = true
			r.cfg.Logger.Warn("journal message too long; the rules see its beginning only", "identifier", rec.Identifier, "unit", rec.Unit, "limit_bytes", source.MaxMessageBytes)
		}
	}
	return rec, own
}

// slowRecord reads the current entry through sdjournal, one field at a
// time. GetEntry would copy every field and compute the cursor, which is
// slower still. Read errors (a corrupt data object) leave the field empty
// rather than stop the source.
func (r *reader) slowRecord() (rec source.Record, own bool) {
	j := r.j
	rec = source.Record{Kind: source.KindJournal, Priority: -1, Facility: -1}
	rec.Identifier, _ = j.GetDataValue("SYSLOG_IDENTIFIER")
	if rec.Identifier == ownIdentifier {
		return rec, true
	}
	if _, err := j.GetData(ownField); err == nil {
		return rec, true
	}
	rec.Unit, _ = j.GetDataValue("_SYSTEMD_UNIT")
	// MESSAGE may hold any bytes; it stays as they are.
	msg, _ := j.GetDataValue("MESSAGE")
	rec.Message = strings.TrimRight(msg, trimSpace)
	if p, err := j.GetDataValue("PRIORITY"); err == nil && len(p) == 1 && '0' <= p[0] && p[0] <= '7' {
		rec.Priority = int(p[0] - '0')
	}
	if usec, err := j.GetRealtimeUsec(); err == nil {
		rec.Time = time.UnixMicro(int64(usec))
	}
	return rec, false
}

// flush sends what was read since the last batch, with the cursor of the
// last entry read: the only GetCursor call per batch, as it is costly. When
// ctx ends first it returns nil and Run ends.
func (r *reader) flush(ctx context.Context) error {
	if r.read > 0 {
		c, err := r.j.GetCursor()
		if err != nil {
			// Without a cursor the batch cannot be committed; a
			// restarted Run resumes from the last one that was.
			return fmt.Errorf("journal: %w", err)
		}
		r.cursor = c
	}
	b := source.Batch{Source: name, Records: r.recs, Position: source.Position{Cursor: r.cursor}, Lost: r.lost, Truncated: r.truncated}
	select {
	case r.out <- b:
	case <-ctx.Done():
		return nil
	}
	// The consumer owns the sent slice. Sizing the next like it avoids
	// regrowing while catching up and large idle buffers while following.
	r.recs, r.read, r.lost, r.truncated = make([]source.Record, 0, len(r.recs)), 0, 0, 0
	return nil
}

// wait sleeps until the journal changes, PollInterval passes or ctx ends.
// sd_journal_wait's result is only a hint (see minPoll), so the caller always
// calls Next again.
func (r *reader) wait(ctx context.Context) {
	begin := time.Now()
	if r.fdw != nil {
		r.fdw.wait(ctx, r.cfg.PollInterval)
		waitWakeups.Add(1)
		sleep(ctx, minPoll-time.Since(begin))
		return
	}
	deadline := begin.Add(r.cfg.PollInterval)
	for ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		ev := r.j.Wait(min(left, maxWaitSlice))
		waitWakeups.Add(1)
		switch {
		case ev == sdjournal.SD_JOURNAL_NOP:
			continue
		case ev < 0:
			// Wait is broken for this handle: fall back to polling.
			sleep(ctx, time.Until(deadline))
			return
		default:
			sleep(ctx, minPoll-time.Since(begin))
			return
		}
	}
}

// waitWakeups counts the times a waiting reader woke up, for tests.
var waitWakeups atomic.Int64

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
