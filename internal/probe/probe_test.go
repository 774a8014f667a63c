package probe

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

type hung struct{}

func (hung) Name() string          { return "hung" }
func (hung) Reasons() []string     { return []string{"X"} }
func (hung) Period() time.Duration { return time.Minute }
func (hung) Needs() Needs          { return Needs{} }
func (hung) Check(ctx context.Context, _ *Env) ([]Result, error) {
	select {} // a probe ignoring its context must still not stall the loop
}

func TestHungCheckTimesOut(t *testing.T) {
	var gotErr error
	r := &Runner{Env: &Env{Log: discard(), Now: time.Now}, Timeout: 50 * time.Millisecond,
		Observe: func(_ string, _ time.Duration, err error) { gotErr = err }}
	done := make(chan struct{})
	go func() {
		// No emitter: a check that never finishes has nothing to emit.
		r.checkOnce(context.Background(), hung{}, NewTracker("hung", 2), nil)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("hung probe blocked its loop")
	}
	if gotErr == nil || !strings.Contains(gotErr.Error(), "did not finish") {
		t.Fatalf("want a timeout error, got %v", gotErr)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// named is a probe with a name and a period, for scheduling tests.
type named struct {
	hung
	name   string
	period time.Duration
}

func (n named) Name() string          { return n.name }
func (n named) Period() time.Duration { return n.period }

// The probes of one period first run evenly spread over the first fifth of
// it, in name order, after one random phase; none two at once.
func TestFirstRunsStaggered(t *testing.T) {
	probes := []Probe{
		named{name: "d", period: 5 * time.Minute}, named{name: "a", period: 5 * time.Minute},
		named{name: "efa", period: time.Minute}, named{name: "c", period: 5 * time.Minute},
		named{name: "b", period: 5 * time.Minute}, named{name: "neuron", period: time.Minute},
	}
	for _, phase := range []int64{0, 7} {
		got := firstRuns(probes, func(n int64) int64 { return min(phase*int64(time.Second), n-1) })
		p := time.Duration(phase) * time.Second
		// 5m: a window of 1m, slots of 15s; 1m: a window of 12s, slots of 6s.
		want := []time.Duration{p + 45*time.Second, p, min(p, 6*time.Second), p + 30*time.Second, p + 15*time.Second, min(p, 6*time.Second) + 6*time.Second}
		if !slices.Equal(got, want) {
			t.Errorf("phase %v: first runs %v, want %v", p, got, want)
		}
	}
}
