// Package hardware detects accelerators from PCI data under the host root,
// which decides whether AcceleratedHardwareReady exists on this node.
package hardware

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/host"
)

// PCI vendor IDs.
const (
	vendorNvidia = "0x10de"
	vendorAmazon = "0x1d0f"
)

// PCI class prefixes of NVIDIA devices that are GPUs (VGA 0x0300, 3D
// controller 0x0302); NVSwitches and audio functions also carry 0x10de.
var gpuClasses = []string{"0x0300", "0x0302"}

// neuronDeviceIDs are the Amazon device IDs the Neuron driver claims
// (Inferentia 0x7064–0x7067, Trainium 0x7164, Inferentia2 0x7264,
// Trainium2 0x7364, Trainium3 0x7564/0x7565). Amazon's vendor ID also
// covers ENA, EFA and NVMe, so the vendor alone says nothing; the ID list
// lets a Neuron device be recognised even when its driver failed to load,
// which is exactly when its health matters.
var neuronDeviceIDs = map[string]bool{
	"0x7064": true, "0x7065": true, "0x7066": true, "0x7067": true,
	"0x7164": true, "0x7264": true, "0x7364": true, "0x7564": true, "0x7565": true,
}

// neuronDrivers are the names the Neuron kernel driver registers on the PCI
// bus: "neuron-driver" today, "neuron" in some older packages. A device
// bound to either is Neuron even if its ID is newer than the list above.
var neuronDrivers = map[string]bool{"neuron-driver": true, "neuron": true}

// PCIDevice is one PCI function as sysfs describes it.
type PCIDevice struct {
	// Addr is the sysfs name, e.g. "0000:10:1c.0".
	Addr   string
	Vendor string
	Device string
	Class  string
	// Driver is the bound driver's name, "" when none is bound.
	Driver string
}

// PCIDevices lists the PCI functions under <root>/sys/bus/pci/devices in
// address order. A missing sysfs is an empty list.
func PCIDevices(root string) []PCIDevice {
	// Glob returns the names sorted.
	dirs, _ := filepath.Glob(host.Path(root, "/sys/bus/pci/devices/*"))
	out := make([]PCIDevice, 0, len(dirs))
	for _, d := range dirs {
		dev := PCIDevice{
			Addr:   filepath.Base(d),
			Vendor: readTrim(filepath.Join(d, "vendor")),
			Device: readTrim(filepath.Join(d, "device")),
			Class:  readTrim(filepath.Join(d, "class")),
		}
		if link, err := os.Readlink(filepath.Join(d, "driver")); err == nil {
			dev.Driver = filepath.Base(link)
		}
		out = append(out, dev)
	}
	return out
}

// IsNvidiaGPU reports whether d is an NVIDIA GPU (not an NVSwitch or an
// audio function).
func (d PCIDevice) IsNvidiaGPU() bool {
	if d.Vendor != vendorNvidia {
		return false
	}
	for _, p := range gpuClasses {
		if strings.HasPrefix(d.Class, p) {
			return true
		}
	}
	return false
}

// IsNeuron reports whether d is an AWS Neuron device.
func (d PCIDevice) IsNeuron() bool {
	return d.Vendor == vendorAmazon && (neuronDeviceIDs[d.Device] || neuronDrivers[d.Driver])
}

// NeuronDevices lists the Neuron devices on the PCI bus, bound or not.
func NeuronDevices(root string) []PCIDevice {
	var out []PCIDevice
	for _, d := range PCIDevices(root) {
		if d.IsNeuron() {
			out = append(out, d)
		}
	}
	return out
}

// Detect reports the accelerator kind of the host at root. NVIDIA wins when
// both are present (no such instance exists today).
func Detect(root string) condition.Accelerator {
	neuron := false
	for _, d := range PCIDevices(root) {
		if d.IsNvidiaGPU() {
			return condition.Nvidia
		}
		neuron = neuron || d.IsNeuron()
	}
	if neuron {
		return condition.Neuron
	}
	// Fallback used by EKS's agent: the driver column of /proc/bus/pci/devices.
	if b, err := os.ReadFile(host.Path(root, "/proc/bus/pci/devices")); err == nil {
		switch {
		case strings.Contains(string(b), "nvidia"):
			return condition.Nvidia
		case strings.Contains(string(b), "neuron"):
			return condition.Neuron
		}
	}
	return condition.NoAccelerator
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
