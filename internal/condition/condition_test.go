package condition

import (
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

func fatal(reason, key string, at time.Time, id uint64) finding.Finding {
	return finding.Finding{ID: id, Condition: finding.NetworkingReady, Reason: reason, Key: key, Severity: finding.Fatal, Message: strings.Repeat("x", 200) + " " + key, Detected: at}
}

func TestComputeKeepsTransitionTimeAndOldestReason(t *testing.T) {
	t0 := time.Unix(1000, 0)
	mon := []string{finding.NetworkingReady, finding.KernelReady}
	cs := Compute(nil, mon, NoAccelerator, nil, nil, t0)
	if cs[finding.NetworkingReady].Status != True || cs[finding.NetworkingReady].Reason != "NetworkingIsReady" || !cs[finding.NetworkingReady].LastTransitionTime.Equal(t0) {
		t.Fatalf("healthy: %+v", cs[finding.NetworkingReady])
	}
	a := fatal("InterfaceNotUp", "eth1", t0.Add(time.Minute), 1)
	cs = Compute(cs, mon, NoAccelerator, nil, []finding.Finding{a}, t0.Add(2*time.Minute))
	n := cs[finding.NetworkingReady]
	if n.Status != False || n.Reason != "InterfaceNotUp" || !n.LastTransitionTime.Equal(a.Detected) {
		t.Fatalf("first fatal: %+v", n)
	}
	if !cs[finding.KernelReady].LastTransitionTime.Equal(t0) {
		t.Fatal("an unrelated condition was re-stamped")
	}
	// Many more findings: the reason stays, the time stays, the message is bounded.
	active := []finding.Finding{a}
	for i := 0; i < 50; i++ {
		active = append(active, fatal("IPAMDNotReady", string(rune('a'+i%26))+"x", t0.Add(time.Duration(3+i)*time.Minute), uint64(i+2)))
	}
	cs = Compute(cs, mon, NoAccelerator, nil, active, t0.Add(time.Hour))
	n = cs[finding.NetworkingReady]
	if n.Reason != "InterfaceNotUp" || !n.LastTransitionTime.Equal(a.Detected) || len(n.Message) > MaxMessageBytes || !strings.Contains(n.Message, "more)") {
		t.Fatalf("many findings: reason %s ltt %v len %d msg …%s", n.Reason, n.LastTransitionTime, len(n.Message), n.Message[len(n.Message)-20:])
	}
	// Recovery flips back with a new transition time.
	cs = Compute(cs, mon, NoAccelerator, nil, nil, t0.Add(2*time.Hour))
	if n := cs[finding.NetworkingReady]; n.Status != True || !n.LastTransitionTime.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("recovered: %+v", n)
	}
}

func TestAcceleratedHealthyReason(t *testing.T) {
	if r, _ := Healthy(finding.AcceleratedHardwareReady, Neuron); r != "NeuronAcceleratedHardwareIsReady" {
		t.Fatal(r)
	}
	if r, _ := Healthy(finding.AcceleratedHardwareReady, Nvidia); r != "NvidiaGPUIsReady" {
		t.Fatal(r)
	}
}

func TestTypesFiveFirstThenCustomSorted(t *testing.T) {
	cs := map[string]Condition{"ZooReady": {}, finding.StorageReady: {}, "AppReady": {}, finding.KernelReady: {}}
	if got := strings.Join(Types(cs), ","); got != "KernelReady,StorageReady,AppReady,ZooReady" {
		t.Fatal(got)
	}
}

func TestComputeCustomHealthy(t *testing.T) {
	cs := Compute(nil, []string{"FooReady"}, NoAccelerator, map[string]Declared{"FooReady": {HealthyReason: "FooOK", HealthyMessage: "foo fine"}}, nil, time.Unix(0, 0))
	if c := cs["FooReady"]; c.Status != True || c.Reason != "FooOK" || c.Message != "foo fine" {
		t.Fatalf("%+v", c)
	}
}
