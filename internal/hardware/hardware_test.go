package hardware

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/condition"
)

// pciFixture writes one sysfs PCI function under root; driver "" leaves it
// unbound.
func pciFixture(t *testing.T, root, addr, vendor, device, class, driver string) {
	t.Helper()
	dir := filepath.Join(root, "sys/bus/pci/devices", addr)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"vendor": vendor, "device": device, "class": class} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if driver != "" {
		if err := os.Symlink("../../../../bus/pci/drivers/"+driver, filepath.Join(dir, "driver")); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDetect(t *testing.T) {
	cases := []struct {
		name string
		devs [][5]string // addr vendor device class driver
		want condition.Accelerator
	}{
		{"no accelerator: ENA and NVMe only", [][5]string{
			{"0000:00:05.0", "0x1d0f", "0xec20", "0x020000", "ena"},
			{"0000:00:04.0", "0x1d0f", "0x8061", "0x010802", "nvme"},
		}, condition.NoAccelerator},
		{"NVIDIA 3D controller", [][5]string{{"0000:00:1e.0", "0x10de", "0x2330", "0x030200", "nvidia"}}, condition.Nvidia},
		{"NVIDIA GPU without a driver is still NVIDIA", [][5]string{{"0000:00:1e.0", "0x10de", "0x1eb8", "0x030200", ""}}, condition.Nvidia},
		{"an NVSwitch alone is not a GPU", [][5]string{{"0000:05:00.0", "0x10de", "0x22a3", "0x068000", "nvidia-nvswitch"}}, condition.NoAccelerator},
		// The Neuron driver registers as "neuron-driver"; matching only
		// "neuron" missed every bound device.
		{"Trainium bound to neuron-driver", [][5]string{{"0000:10:1c.0", "0x1d0f", "0x7164", "0x000000", "neuron-driver"}}, condition.Neuron},
		{"Inferentia2 with its driver not loaded", [][5]string{{"0000:10:1c.0", "0x1d0f", "0x7264", "0x000000", ""}}, condition.Neuron},
		{"unknown Amazon ID bound to the old driver name", [][5]string{{"0000:10:1c.0", "0x1d0f", "0x7999", "0x000000", "neuron"}}, condition.Neuron},
		{"EFA is not Neuron", [][5]string{{"0000:10:1d.0", "0x1d0f", "0xefa1", "0x020000", "efa"}}, condition.NoAccelerator},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range c.devs {
				pciFixture(t, root, d[0], d[1], d[2], d[3], d[4])
			}
			if got := Detect(root); got != c.want {
				t.Fatalf("Detect = %q, want %q", got, c.want)
			}
		})
	}
}

func TestDetectProcFallback(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc/bus/pci"), 0o755); err != nil {
		t.Fatal(err)
	}
	line := "0018\t1d0f7164\t0\tfe000000\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tneuron-driver\n"
	if err := os.WriteFile(filepath.Join(root, "proc/bus/pci/devices"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Detect(root); got != condition.Neuron {
		t.Fatalf("Detect = %q, want neuron", got)
	}
}

func TestNeuronDevices(t *testing.T) {
	root := t.TempDir()
	pciFixture(t, root, "0000:10:1c.0", "0x1d0f", "0x7164", "0x000000", "neuron-driver")
	pciFixture(t, root, "0000:10:1d.0", "0x1d0f", "0x7164", "0x000000", "")
	pciFixture(t, root, "0000:10:1e.0", "0x1d0f", "0xefa1", "0x020000", "efa")
	got := NeuronDevices(root)
	if len(got) != 2 || got[0].Addr != "0000:10:1c.0" || got[0].Driver != "neuron-driver" || got[1].Driver != "" {
		t.Fatalf("NeuronDevices = %+v", got)
	}
}
