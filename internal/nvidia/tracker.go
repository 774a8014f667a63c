package nvidia

import (
	"time"

	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// coverage says what one poll managed to check. A finding only counts a
// pass when its check actually ran: a GPU that could not be read is not a
// healthy GPU.
type coverage struct {
	keys map[string]bool // reason\x00key
	// reasons whose check ran on every device (and every key) this poll.
	reasons map[string]bool
}

func newCoverage() coverage {
	return coverage{keys: map[string]bool{}, reasons: map[string]bool{}}
}

func (c coverage) key(reason, key string) bool { return c.keys[reason+"\x00"+key] }

// tracker turns successive poll results into raises and clears. It differs
// from the probe framework's Tracker in three ways NVML needs: a Warning is
// one event per episode (a GPU that stays hot would otherwise send an
// event every poll), a result can require confirmation on consecutive
// polls, and findings left active by an earlier run of the daemon are
// cleared once the check has passed (the tracker starts empty on every
// start and reload, so it cannot know their keys).
type tracker struct {
	passes int
	active map[string]*tracked
	// clean counts consecutive fully covered polls without a result, per
	// sweepable reason; swept marks reasons whose left-over findings have
	// been cleared in this run.
	clean map[string]int
	swept map[string]bool
}

type tracked struct {
	res    result
	seen   int
	raised bool
	passes int
}

// sweepable are the reasons that can be active (Fatal) and that clean polls
// disprove whoever raised them: an earlier run, or (for the device count and
// Fabric Manager) a kernel log or journal rule about a GPU or fabric NVML now
// sees healthy.
var sweepable = []string{ReasonDoubleBitError, ReasonNVLinkError, ReasonDeviceCountMismatch, ReasonFabricManager, ReasonFabricError}

func newTracker(passes int) *tracker {
	return &tracker{passes: passes, active: map[string]*tracked{}, clean: map[string]int{}, swept: map[string]bool{}}
}

func (t *tracker) apply(now time.Time, results []result, cov coverage, emit detector.Emitter) {
	seen := map[string]bool{}
	hit := map[string]bool{}
	for _, r := range results {
		k := r.Reason + "\x00" + r.Key
		seen[k], hit[r.Reason] = true, true
		tr := t.active[k]
		if tr == nil {
			tr = &tracked{}
			t.active[k] = tr
		}
		prevSig, wasRaised := tr.res.Sig, tr.raised
		tr.res, tr.passes = r, 0
		tr.seen++
		if tr.seen < max(1, r.Confirm) {
			continue
		}
		// A Fatal finding is raised on every poll: the pipeline merges it
		// into the active one and keeps its message and last-seen current.
		if r.Severity == finding.Fatal || !wasRaised || r.Sig != prevSig {
			f := r.Finding("nvml", Source, now)
			f.Recovery.Probe = true
			emit.Raise(f)
		}
		tr.raised = true
	}
	for k, tr := range t.active {
		if seen[k] || !cov.key(tr.res.Reason, tr.res.Key) {
			continue
		}
		if !tr.raised {
			// Not confirmed: one good poll resets it.
			delete(t.active, k)
			continue
		}
		tr.passes++
		if tr.passes >= t.passes {
			if tr.res.Severity == finding.Fatal {
				t.clear(emit, finding.Clear{Reason: tr.res.Reason, Key: tr.res.Key})
			}
			delete(t.active, k)
		}
	}
	for _, reason := range sweepable {
		if t.swept[reason] || !cov.reasons[reason] {
			continue
		}
		if hit[reason] {
			t.clean[reason] = 0
			continue
		}
		t.clean[reason]++
		if t.clean[reason] >= t.passes {
			t.clear(emit, finding.Clear{Reason: reason, AllKeys: true})
			t.swept[reason] = true
		}
	}
}

func (t *tracker) clear(emit detector.Emitter, c finding.Clear) {
	c.Condition = finding.AcceleratedHardwareReady
	c.By = "nvml"
	emit.Clear(c)
}
