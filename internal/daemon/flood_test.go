package daemon

import (
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/source"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

const floodRules = `rules:
  - name: Warn
    condition: StorageReady
    reason: Warn
    severity: Warning
    source: kmsg
    patterns: ['warn (?P<n>\d+)']
    message: 'w ${n}'
`

// A flood of distinct findings (nothing to coalesce) is committed in steps
// of about maxNewPerCommit, not all at once: what a commit holds in memory
// does not grow with the flood. Every finding is committed once, and every
// batch is given back to its source once processed.
func TestFloodOfFindingsIsCommittedInBoundedSteps(t *testing.T) {
	const batches, per = 40, 500
	h := newHarness(t)
	h.write("rules.d/flood.yaml", floodRules)
	var mu sync.Mutex
	largest, total := 0, 0
	h.pubs = []publish.Publisher{publish.Func(func(u publish.Update) {
		mu.Lock()
		defer mu.Unlock()
		largest = max(largest, len(u.New))
		for _, f := range u.New {
			total += f.Count
		}
	})}
	// The whole flood waits for the daemon before it starts, so that it
	// can drain as much as it likes into one commit.
	h.feed.ch = make(chan source.Batch, batches)
	var recycled atomic.Int64
	for b := range batches {
		var recs []source.Record
		for i := range per {
			h.seq++
			recs = append(recs, source.Record{Kind: source.KindKmsg, Message: fmt.Sprint("warn ", b*per+i), Seq: h.seq, Time: time.Now()})
		}
		h.feed.ch <- source.Batch{Source: "kmsg", Records: recs, Position: source.Position{BootID: "boot-1", Seq: h.seq}, Recycle: func() { recycled.Add(1) }}
	}
	h.start()
	defer h.stop()
	h.waitState(func(st *state.State) bool { return st.Positions["kmsg"].Seq == batches*per })
	mu.Lock()
	defer mu.Unlock()
	if total != batches*per {
		t.Fatalf("%d findings published, want %d", total, batches*per)
	}
	// The bound is checked between batches: one batch may overshoot it.
	if largest > maxNewPerCommit+per {
		t.Fatalf("a commit held %d new findings, bound %d", largest, maxNewPerCommit+per)
	}
	if recycled.Load() != batches {
		t.Fatalf("%d batches given back, want %d", recycled.Load(), batches)
	}
}

// config.yaml's memoryLimit sets the runtime's soft memory limit, on start
// and on reload; GOMEMLIMIT in the environment wins over it.
func TestMemoryLimitFromConfig(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	t.Setenv("GOMEMLIMIT", "")

	h := newHarness(t)
	h.write("config.yaml", "memoryLimit: 40MiB\n")
	h.start()
	if got := debug.SetMemoryLimit(-1); got != 40<<20 {
		t.Fatalf("limit %d after start, want 40 MiB", got)
	}
	h.write("config.yaml", "memoryLimit: off\n")
	waitFor(t, "limit lifted on reload", h, func() bool { return debug.SetMemoryLimit(-1) == math.MaxInt64 })
	h.write("config.yaml", "")
	waitFor(t, "default limit on reload", h, func() bool { return debug.SetMemoryLimit(-1) == config.DefaultMemoryLimit })
	h.stop()

	debug.SetMemoryLimit(prev)
	t.Setenv("GOMEMLIMIT", "123MiB")
	h = newHarness(t)
	h.write("config.yaml", "memoryLimit: 40MiB\n")
	h.start()
	defer h.stop()
	if got := debug.SetMemoryLimit(-1); got != prev {
		t.Fatalf("limit %d with GOMEMLIMIT set, want it left at %d", got, prev)
	}
}
