package state

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

func warn(msg string, at time.Time) finding.Finding {
	return finding.Finding{Condition: finding.StorageReady, Reason: "IOError", Severity: finding.Warning, Message: msg, Source: "file:/var/log/kern.log", Detected: at, LastSeen: at, Count: 1}
}

// occurrences adds up what the changes account for: each new finding's
// count and the repeats folded into earlier ones.
func occurrences(ch *Changes) int {
	n := 0
	for _, f := range ch.New {
		n += f.Count
	}
	for _, r := range ch.Repeats {
		n += r
	}
	return n
}

func pending(st *State) int {
	n := 0
	for _, c := range st.Coalescing {
		n += c.Finding.Count
	}
	return n
}

// A flood of one Warning is one finding at once and one with the count of
// the repeats when the window ends, not a finding per line.
func TestFloodOfIdenticalWarningsIsCoalesced(t *testing.T) {
	t0 := time.Unix(1000, 0)
	st := New("b", t0)
	var ch Changes
	const n = 100000
	for i := range n {
		st.Raise(warn("Buffer I/O error on dev nvme1n1, logical block 0", t0.Add(time.Duration(i)*time.Microsecond)), true, &ch)
	}
	if len(ch.New) != 1 || ch.New[0].Count != 1 || len(st.Outbox) != 1 {
		t.Fatalf("%d new findings (first count %d), outbox %d; want the first one only", len(ch.New), ch.New[0].Count, len(st.Outbox))
	}
	if pending(st) != n-1 {
		t.Fatalf("%d repeats pending, want %d", pending(st), n-1)
	}
	if got := st.FlushCoalesced(time.Now(), true, &ch); got != 0 {
		t.Fatalf("flushed %d before the window ended", got)
	}
	if got := st.FlushCoalesced(time.Now().Add(CoalesceWindow), true, &ch); got != 1 {
		t.Fatalf("flushed %d findings after the window, want 1", got)
	}
	f := ch.New[1]
	if f.Count != n-1 || !f.Detected.Equal(t0.Add(time.Microsecond)) || !f.LastSeen.Equal(t0.Add((n-1)*time.Microsecond)) || f.ID != 2 {
		t.Fatalf("coalesced finding %+v", f)
	}
	if occurrences(&ch) != n || pending(st) != 0 || len(st.Outbox) != 2 || st.Outbox[1].Finding.Count != n-1 {
		t.Fatalf("accounted %d of %d, pending %d, outbox %d", occurrences(&ch), n, pending(st), len(st.Outbox))
	}
}

// The first repeat after the window joins the pending ones and starts the
// next window: a steady flood makes one finding per window.
func TestCoalescedRepeatsCommitWhenTheWindowEnds(t *testing.T) {
	t0 := time.Unix(1000, 0)
	st := New("b", t0)
	var ch Changes
	for s := 0; s < 60; s++ { // one a second for a minute
		st.Raise(warn("m", t0.Add(time.Duration(s)*time.Second)), false, &ch)
	}
	// t0 alone; t0+10s with the 9 before it; t0+20s…; t0+50s: 6 findings,
	// and 9 repeats pending.
	if len(ch.New) != 6 || pending(st) != 9 {
		t.Fatalf("%d findings, %d pending; want 6 and 9", len(ch.New), pending(st))
	}
	for i, f := range ch.New[1:] {
		if f.Count != 10 || !f.LastSeen.Equal(t0.Add(time.Duration(10*(i+1))*time.Second)) {
			t.Fatalf("finding %d: count %d last seen %v", i+1, f.Count, f.LastSeen)
		}
	}
	// Another message or key is another finding; another source is the
	// same fault seen twice (CrossSourceWindow), a repeat.
	other := []finding.Finding{warn("m2", t0.Add(59*time.Second)), warn("m", t0.Add(59*time.Second)), warn("m", t0.Add(59*time.Second))}
	other[1].Key = "nvme2n1"
	other[2].Source = "kmsg"
	for _, f := range other {
		st.Raise(f, false, &ch)
	}
	if len(ch.New) != 8 || occurrences(&ch)+pending(st) != 63 {
		t.Fatalf("%d findings, %d occurrences accounted; want 8 and 63", len(ch.New), occurrences(&ch)+pending(st))
	}
}

// Pending repeats are saved with the state: a restart (or a crash after
// a commit) goes on counting them, losing none and counting none twice.
func TestCoalescingSurvivesARestart(t *testing.T) {
	t0 := time.Unix(1000, 0)
	st := New("b", t0)
	var ch Changes
	for i := range 5 {
		st.Raise(warn("m", t0.Add(time.Duration(i)*time.Second)), false, &ch)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	var ch2 Changes
	for i := 5; i < 8; i++ {
		back.Raise(warn("m", t0.Add(time.Duration(i)*time.Second)), false, &ch2)
	}
	if len(ch2.New) != 0 || pending(&back) != 7 {
		t.Fatalf("after a restart: %d new findings, %d pending; want 0 and 7", len(ch2.New), pending(&back))
	}
	back.FlushCoalesced(time.Now().Add(CoalesceWindow), false, &ch2)
	if len(ch2.New) != 1 || ch2.New[0].Count != 7 {
		t.Fatalf("flushed %+v", ch2.New)
	}
}

// More distinct Warnings than can be tracked commit what is pending rather
// than drop it.
func TestCoalescingBeyondItsBoundLosesNothing(t *testing.T) {
	t0 := time.Unix(1000, 0)
	st := New("b", t0)
	var ch Changes
	raised := 0
	for i := range 3 * MaxCoalescing {
		for range 3 {
			st.Raise(warn(fmt.Sprint("m", i), t0), false, &ch)
			raised++
		}
	}
	if len(st.coalescing) > MaxCoalescing || len(st.Coalescing) > MaxCoalescing {
		t.Fatalf("tracking %d warnings, %d pending; bound %d", len(st.coalescing), len(st.Coalescing), MaxCoalescing)
	}
	if got := occurrences(&ch) + pending(st); got != raised {
		t.Fatalf("accounted %d of %d", got, raised)
	}
}

// Whatever the order and timing of raises, every occurrence is a finding,
// part of a finding's count, a counted repeat, or pending.
func TestEveryOccurrenceIsAccountedFor(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Unix(1000, 0)
	st := New("b", t0)
	var ch Changes
	at := t0
	const n = 20000
	for range n {
		at = at.Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
		f := warn(fmt.Sprint("m", rng.IntN(5)), at.Add(-time.Duration(rng.IntN(3000))*time.Millisecond))
		switch rng.IntN(4) {
		case 0:
			f.Severity, f.Key = finding.Fatal, fmt.Sprint("k", rng.IntN(3))
		case 1:
			f.Source = "kmsg"
		}
		st.Raise(f, true, &ch)
		if rng.IntN(100) == 0 {
			st.FlushCoalesced(time.Now().Add(time.Duration(rng.IntN(2))*CoalesceWindow), true, &ch)
		}
	}
	if got := occurrences(&ch) + pending(st); got != n {
		t.Fatalf("accounted %d of %d", got, n)
	}
	st.FlushCoalesced(time.Now().Add(CoalesceWindow), true, &ch)
	if got := occurrences(&ch); got != n || len(st.Coalescing) != 0 {
		t.Fatalf("after the last flush: accounted %d of %d, %d still pending", got, n, len(st.Coalescing))
	}
}
