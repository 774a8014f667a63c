package nvidia

import (
	"testing"
	"time"
)

func covered(reason, key string) coverage {
	c := newCoverage()
	c.keys[reason+"\x00"+key] = true
	return c
}

func TestTrackerConfirmationResetsOnAPass(t *testing.T) {
	tr := newTracker(2)
	now := time.Now()
	res := []result{{Result: deviceCountMismatch.Result("m", "k"), Confirm: 2}}
	cov := covered(ReasonDeviceCountMismatch, "k")
	rec := &collector{}
	tr.apply(now, res, cov, rec)
	tr.apply(now, nil, cov, rec) // a pass in between
	tr.apply(now, res, cov, rec)
	if len(rec.raised()) != 0 {
		t.Fatalf("raised without two consecutive sightings: %+v", rec.raised())
	}
	tr.apply(now, res, cov, rec)
	if len(rec.raised()) != 1 {
		t.Fatalf("not raised after two consecutive sightings: %+v", rec.raised())
	}
}

func TestTrackerWarningClearsNothing(t *testing.T) {
	tr := newTracker(2)
	now := time.Now()
	cov := covered(ReasonPCIeError, "k")
	rec := &collector{}
	tr.apply(now, []result{{Result: pcieError.Result("", "k")}}, cov, rec)
	tr.apply(now, nil, cov, rec)
	tr.apply(now, nil, cov, rec)
	if len(rec.raised()) != 1 || len(rec.clears()) != 0 {
		t.Fatalf("a Warning is an event, never active: raised %+v cleared %+v", rec.raised(), rec.clears())
	}
	if len(tr.active) != 0 {
		t.Fatalf("episode not ended: %+v", tr.active)
	}
}

func TestTrackerUncheckedKeyNeitherPassesNorFails(t *testing.T) {
	tr := newTracker(2)
	now := time.Now()
	rec := &collector{}
	tr.apply(now, []result{{Result: doubleBitError.Result("", "k")}}, covered(ReasonDoubleBitError, "k"), rec)
	for i := 0; i < 5; i++ {
		tr.apply(now, nil, newCoverage(), rec)
	}
	if len(rec.clears()) != 0 {
		t.Fatalf("cleared while the check could not run: %+v", rec.clears())
	}
}
