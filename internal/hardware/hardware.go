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

// Detect reports the accelerator kind of the host at root. NVIDIA wins when
// both are present (no such instance exists today).
func Detect(root string) condition.Accelerator {
	devs, _ := filepath.Glob(host.Path(root, "/sys/bus/pci/devices/*"))
	neuron := false
	for _, d := range devs {
		vendor := readTrim(filepath.Join(d, "vendor"))
		switch vendor {
		case vendorNvidia:
			class := readTrim(filepath.Join(d, "class"))
			for _, p := range gpuClasses {
				if strings.HasPrefix(class, p) {
					return condition.Nvidia
				}
			}
		case vendorAmazon:
			// Amazon's vendor ID also covers ENA, EFA and NVMe; Neuron
			// devices are told apart by their bound driver.
			if link, err := os.Readlink(filepath.Join(d, "driver")); err == nil && filepath.Base(link) == "neuron" {
				neuron = true
			}
		}
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
