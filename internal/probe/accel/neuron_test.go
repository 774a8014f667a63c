package accel

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// neuronFixture is a trn1.32xlarge-like host with n Neuron devices, bound
// to the driver, and n device nodes.
func neuronFixture(t *testing.T, n int) *probetest.Tree {
	ft := probetest.NewTree(t)
	ft.Mkdir("/dev")
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("0000:%02x:1c.0", 0x10+i)
		ft.Write("/sys/bus/pci/devices/"+addr+"/vendor", "0x1d0f\n")
		ft.Write("/sys/bus/pci/devices/"+addr+"/device", "0x7164\n")
		ft.Write("/sys/bus/pci/devices/"+addr+"/class", "0x088000\n")
		neuronBind(t, ft, addr)
		ft.Write(fmt.Sprintf("/dev/neuron%d", i), "")
	}
	// Not Neuron: the instance's ENA and EFA.
	ft.Write("/sys/bus/pci/devices/0000:00:05.0/vendor", "0x1d0f\n")
	ft.Write("/sys/bus/pci/devices/0000:00:05.0/device", "0xec20\n")
	ft.Write("/dev/nvme0", "")
	return ft
}

func neuronBind(t *testing.T, ft *probetest.Tree, addr string) {
	t.Helper()
	link := filepath.Join(ft.Root, "sys/bus/pci/devices", addr, "driver")
	if err := os.Symlink("../../../../bus/pci/drivers/neuron-driver", link); err != nil {
		t.Fatal(err)
	}
}

func TestNeuronProbeOnlyOnNeuronHosts(t *testing.T) {
	ft := probetest.NewTree(t)
	ft.Write("/sys/bus/pci/devices/0000:00:05.0/vendor", "0x1d0f\n")
	ft.Write("/sys/bus/pci/devices/0000:00:05.0/device", "0xec20\n")
	p, err := probetest.BuildErr(t, ft.Env(), "neuron", "")
	if err != nil || p != nil {
		t.Fatalf("non-Neuron host: probe %v, err %v", p, err)
	}
}

func TestNeuronProbeQuietWhenHealthy(t *testing.T) {
	ft := neuronFixture(t, 16)
	env := ft.Env()
	probetest.WantQuiet(t, probetest.Build(t, env, "neuron", ""), env, 3)
}

func TestNeuronProbeMissingDeviceNode(t *testing.T) {
	ft := neuronFixture(t, 16)
	env := ft.Env()
	p := probetest.Build(t, env, "neuron", "")
	probetest.WantNone(t, probetest.Check(t, p, env))
	ft.Remove("/dev/neuron15")
	// One check is not enough: nodes appear a moment after the driver binds.
	probetest.WantNone(t, probetest.Check(t, p, env))
	res := probetest.Check(t, p, env)
	if len(res) != 1 || res[0].Reason != ReasonNeuronDeviceCountMismatch || res[0].Severity != finding.Fatal ||
		res[0].Condition != finding.AcceleratedHardwareReady || res[0].Message != "16 Neuron PCI devices but 15 neuron device files were detected" {
		t.Fatalf("got %+v", res)
	}
}

func TestNeuronProbeUnboundDevice(t *testing.T) {
	ft := neuronFixture(t, 2)
	if err := os.Remove(filepath.Join(ft.Root, "sys/bus/pci/devices/0000:11:1c.0/driver")); err != nil {
		t.Fatal(err)
	}
	ft.Remove("/dev/neuron1")
	env := ft.Env()
	p := probetest.Build(t, env, "neuron", "")
	probetest.Check(t, p, env)
	res := probetest.Check(t, p, env)
	want := "Neuron PCI device(s) 0000:11:1c.0 have no driver bound (is the aws-neuronx-dkms module loaded?); 2 Neuron PCI devices but 1 neuron device files were detected"
	if len(res) != 1 || res[0].Message != want {
		t.Fatalf("got %+v\nwant %q", res, want)
	}
}

func TestNeuronProbeRecovers(t *testing.T) {
	ft := neuronFixture(t, 2)
	ft.Remove("/dev/neuron1")
	env := ft.Env()
	p := probetest.Build(t, env, "neuron", "")
	r := probetest.NewRig(t, p, env)
	rec := r.Rec
	r.Check()
	r.Check()
	if len(rec.Raised) != 1 || !rec.Raised[0].Recovery.Probe {
		t.Fatalf("raised %+v", rec.Raised)
	}
	ft.Write("/dev/neuron1", "")
	r.Check()
	r.Check()
	if len(rec.Cleared) != 1 || rec.Cleared[0].Reason != ReasonNeuronDeviceCountMismatch {
		t.Fatalf("cleared %+v", rec.Cleared)
	}
}

func TestNeuronProbeDisabled(t *testing.T) {
	ft := neuronFixture(t, 1)
	if p, err := probetest.BuildErr(t, ft.Env(), "neuron", "enabled: false"); err != nil || p != nil {
		t.Fatalf("disabled: %v %v", p, err)
	}
}
