package probe_test

import (
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

func TestTrackerHysteresis(t *testing.T) {
	tr := probe.NewTracker("iface", 2)
	rec := &probetest.Recorder{}
	bad := []probe.Result{{Condition: finding.NetworkingReady, Reason: "InterfaceNotUp", Severity: finding.Fatal, Key: "eth1", Message: "eth1 down"}}
	now := time.Unix(1000, 0)
	tr.Apply(now, bad, rec)
	if len(rec.Raised) != 1 || !rec.Raised[0].Recovery.Probe || rec.Raised[0].Source != "probe:iface" {
		t.Fatalf("raise: %+v", rec.Raised)
	}
	tr.Apply(now, nil, rec) // one pass: not yet
	if len(rec.Cleared) != 0 {
		t.Fatal("cleared after a single pass")
	}
	tr.Apply(now, bad, rec) // failing again resets the count
	tr.Apply(now, nil, rec)
	if len(rec.Cleared) != 0 {
		t.Fatal("pass count not reset by a new failure")
	}
	tr.Apply(now, nil, rec)
	if len(rec.Cleared) != 1 || rec.Cleared[0].Key != "eth1" || rec.Cleared[0].Reason != "InterfaceNotUp" || rec.Cleared[0].AllKeys {
		t.Fatalf("clear: %+v", rec.Cleared)
	}
}

func TestTrackerAdoptsFindingsFromBeforeARestart(t *testing.T) {
	before := []finding.Finding{
		{Condition: finding.NetworkingReady, Reason: "InterfaceNotUp", Severity: finding.Fatal, Key: "eth1", Source: "probe:iface"},
		{Condition: finding.KernelReady, Reason: "Other", Severity: finding.Fatal, Source: "probe:other"},
		{Condition: finding.KernelReady, Reason: "SoftLockup", Severity: finding.Fatal, Source: "kmsg"},
	}
	tr := probe.NewTracker("iface", 2)
	tr.Adopt(before)
	rec := &probetest.Recorder{}
	tr.Apply(time.Unix(1, 0), nil, rec)
	tr.Apply(time.Unix(2, 0), nil, rec)
	if len(rec.Cleared) != 1 || rec.Cleared[0].Reason != "InterfaceNotUp" || rec.Cleared[0].Key != "eth1" {
		t.Fatalf("cleared %+v, want only the adopted InterfaceNotUp/eth1", rec.Cleared)
	}
}
