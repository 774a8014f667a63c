package tail

import (
	"sync"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/source"
)

// batch is the memory of one batch of records: the records and the text of
// their messages. Once the pipeline has processed a batch it gives the
// memory back (source.Batch.Recycle) and the next batch reuses it, so that
// reading a flood allocates nothing per line and the memory it needs is a
// few batches, whatever the size of the flood.
type batch struct {
	recs []source.Record
	text source.Text
}

var batches sync.Pool

func getBatch(size int) *batch {
	if b, ok := batches.Get().(*batch); ok && cap(b.recs) >= size {
		return b
	}
	return &batch{recs: make([]source.Record, 0, size)}
}

// recycle takes the batch back once its receiver is done with it.
func (b *batch) recycle() {
	// Messages too long for the text buffer are allocations of their own:
	// they must not be kept alive by the pool.
	clear(b.recs[:cap(b.recs)])
	b.recs = b.recs[:0]
	b.text.Reset()
	batches.Put(b)
}

// appendRecord appends the record of the line that last ends to recs, in
// the memory of the batch being filled: recs is nil or what appendRecord
// returned since the last send.
func (r *runner) appendRecord(recs []source.Record, fl *follower, last []byte, now time.Time) []source.Record {
	if r.fill == nil {
		r.fill = getBatch(r.cfg.MaxBatch)
	}
	if recs == nil {
		recs = r.fill.recs[:0]
	}
	return append(recs, r.record(fl, last, &r.fill.text, now))
}
