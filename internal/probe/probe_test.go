package probe

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
)

type recorder struct {
	raised  []finding.Finding
	cleared []finding.Clear
}

func (r *recorder) Raise(f finding.Finding) { r.raised = append(r.raised, f) }
func (r *recorder) Clear(c finding.Clear)   { r.cleared = append(r.cleared, c) }
func (r *recorder) Observe(policy.Event)    {}

func TestTrackerHysteresis(t *testing.T) {
	tr := NewTracker("iface", 2)
	rec := &recorder{}
	bad := []Result{{Condition: finding.NetworkingReady, Reason: "InterfaceNotUp", Severity: finding.Fatal, Key: "eth1", Message: "eth1 down"}}
	now := time.Unix(1000, 0)
	tr.Apply(now, bad, rec)
	if len(rec.raised) != 1 || !rec.raised[0].Recovery.Probe || rec.raised[0].Source != "probe:iface" {
		t.Fatalf("raise: %+v", rec.raised)
	}
	tr.Apply(now, nil, rec) // one pass: not yet
	if len(rec.cleared) != 0 {
		t.Fatal("cleared after a single pass")
	}
	tr.Apply(now, bad, rec) // failing again resets the count
	tr.Apply(now, nil, rec)
	if len(rec.cleared) != 0 {
		t.Fatal("pass count not reset by a new failure")
	}
	tr.Apply(now, nil, rec)
	if len(rec.cleared) != 1 || rec.cleared[0].Key != "eth1" || rec.cleared[0].Reason != "InterfaceNotUp" || rec.cleared[0].AllKeys {
		t.Fatalf("clear: %+v", rec.cleared)
	}
}

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
		r.checkOnce(context.Background(), hung{}, NewTracker("hung", 2), &recorder{})
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

func TestTrackerAdoptsFindingsFromBeforeARestart(t *testing.T) {
	before := []finding.Finding{
		{Condition: finding.NetworkingReady, Reason: "InterfaceNotUp", Severity: finding.Fatal, Key: "eth1", Source: "probe:iface"},
		{Condition: finding.KernelReady, Reason: "Other", Severity: finding.Fatal, Source: "probe:other"},
		{Condition: finding.KernelReady, Reason: "SoftLockup", Severity: finding.Fatal, Source: "kmsg"},
	}
	tr := NewTracker("iface", 2)
	tr.Adopt(before)
	rec := &recorder{}
	tr.Apply(time.Unix(1, 0), nil, rec)
	tr.Apply(time.Unix(2, 0), nil, rec)
	if len(rec.cleared) != 1 || rec.cleared[0].Reason != "InterfaceNotUp" || rec.cleared[0].Key != "eth1" {
		t.Fatalf("cleared %+v, want only the adopted InterfaceNotUp/eth1", rec.cleared)
	}
}

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
