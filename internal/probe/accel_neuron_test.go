package probe

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// neuronFixture is a trn1.32xlarge-like host with n Neuron devices, bound
// to the driver, and n device nodes.
func neuronFixture(t *testing.T, n int) *fxTree {
	ft := newFxTree(t)
	ft.mkdir("/dev")
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("0000:%02x:1c.0", 0x10+i)
		ft.write("/sys/bus/pci/devices/"+addr+"/vendor", "0x1d0f\n")
		ft.write("/sys/bus/pci/devices/"+addr+"/device", "0x7164\n")
		ft.write("/sys/bus/pci/devices/"+addr+"/class", "0x088000\n")
		neuronBind(t, ft, addr)
		ft.write(fmt.Sprintf("/dev/neuron%d", i), "")
	}
	// Not Neuron: the instance's ENA and EFA.
	ft.write("/sys/bus/pci/devices/0000:00:05.0/vendor", "0x1d0f\n")
	ft.write("/sys/bus/pci/devices/0000:00:05.0/device", "0xec20\n")
	ft.write("/dev/nvme0", "")
	return ft
}

func neuronBind(t *testing.T, ft *fxTree, addr string) {
	t.Helper()
	link := filepath.Join(ft.root, "sys/bus/pci/devices", addr, "driver")
	if err := os.Symlink("../../../../bus/pci/drivers/neuron-driver", link); err != nil {
		t.Fatal(err)
	}
}

func TestNeuronProbeOnlyOnNeuronHosts(t *testing.T) {
	ft := newFxTree(t)
	ft.write("/sys/bus/pci/devices/0000:00:05.0/vendor", "0x1d0f\n")
	ft.write("/sys/bus/pci/devices/0000:00:05.0/device", "0xec20\n")
	regMu.Lock()
	f := factories["neuron"]
	regMu.Unlock()
	p, err := f(ft.env(), nil)
	if err != nil || p != nil {
		t.Fatalf("non-Neuron host: probe %v, err %v", p, err)
	}
}

func TestNeuronProbeQuietWhenHealthy(t *testing.T) {
	ft := neuronFixture(t, 16)
	env := ft.env()
	p := buildProbe(t, env, "neuron", "")
	for i := 0; i < 3; i++ {
		wantNone(t, mustCheck(t, p, env))
	}
}

func TestNeuronProbeMissingDeviceNode(t *testing.T) {
	ft := neuronFixture(t, 16)
	env := ft.env()
	p := buildProbe(t, env, "neuron", "")
	wantNone(t, mustCheck(t, p, env))
	ft.remove("/dev/neuron15")
	// One check is not enough: nodes appear a moment after the driver binds.
	wantNone(t, mustCheck(t, p, env))
	res := mustCheck(t, p, env)
	if len(res) != 1 || res[0].Reason != ReasonNeuronDeviceCountMismatch || res[0].Severity != finding.Fatal ||
		res[0].Condition != finding.AcceleratedHardwareReady || res[0].Message != "16 Neuron PCI devices but 15 neuron device files were detected" {
		t.Fatalf("got %+v", res)
	}
}

func TestNeuronProbeUnboundDevice(t *testing.T) {
	ft := neuronFixture(t, 2)
	if err := os.Remove(filepath.Join(ft.root, "sys/bus/pci/devices/0000:11:1c.0/driver")); err != nil {
		t.Fatal(err)
	}
	ft.remove("/dev/neuron1")
	env := ft.env()
	p := buildProbe(t, env, "neuron", "")
	mustCheck(t, p, env)
	res := mustCheck(t, p, env)
	want := "Neuron PCI device(s) 0000:11:1c.0 have no driver bound (is the aws-neuronx-dkms module loaded?); 2 Neuron PCI devices but 1 neuron device files were detected"
	if len(res) != 1 || res[0].Message != want {
		t.Fatalf("got %+v\nwant %q", res, want)
	}
}

func TestNeuronProbeRecovers(t *testing.T) {
	ft := neuronFixture(t, 2)
	ft.remove("/dev/neuron1")
	env := ft.env()
	p := buildProbe(t, env, "neuron", "")
	r := &Runner{Env: env, Probes: []Probe{p}}
	tr := NewTracker(p.Name(), DefaultPasses)
	rec := &recorder{}
	r.checkOnce(context.Background(), p, tr, rec)
	r.checkOnce(context.Background(), p, tr, rec)
	if len(rec.raised) != 1 || !rec.raised[0].Recovery.Probe {
		t.Fatalf("raised %+v", rec.raised)
	}
	ft.write("/dev/neuron1", "")
	r.checkOnce(context.Background(), p, tr, rec)
	r.checkOnce(context.Background(), p, tr, rec)
	if len(rec.cleared) != 1 || rec.cleared[0].Reason != ReasonNeuronDeviceCountMismatch {
		t.Fatalf("cleared %+v", rec.cleared)
	}
}

func TestNeuronProbeDisabled(t *testing.T) {
	ft := neuronFixture(t, 1)
	regMu.Lock()
	f := factories["neuron"]
	regMu.Unlock()
	if p, err := f(ft.env(), yamlNode(t, "enabled: false")); err != nil || p != nil {
		t.Fatalf("disabled: %v %v", p, err)
	}
}
