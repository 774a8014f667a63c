package nvidia

import (
	"fmt"
	"strconv"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/nodehealthd/nodehealthd/internal/policy"
)

// xidRules are the catalogue's kmsg XID rules that build the finding of an
// NVML XID event, the Error rule first (its captureIn is the fatal set).
// The event carries the captures those rules read from an NVRM line, so
// an XID seen by both gets the same reason, severity, key and message, and
// the pipeline merges the two sightings into one finding (a Fatal one by
// identity, a Warning one by identity within 30 s across sources). An
// operator's replacement of these rules, their sets or their reasons'
// overrides apply to NVML's XIDs the same way.
var xidRules = []string{"NvidiaXIDError", "NvidiaXIDWarning"}

// xidEvent is XID xid on the GPU whose kmsg address is pci (see PCIKey).
func xidEvent(xid uint64, pci string, at time.Time) policy.Event {
	return policy.Event{
		Rules:    xidRules,
		Captures: map[string]string{"xid": strconv.FormatUint(xid, 10), "pci": pci},
		Source:   Source,
		Time:     at,
	}
}

// PCIKey renders a GPU's PCI address the way the driver prints it in
// "NVRM: Xid (PCI:0000:3b:00): …" (domain:bus:device, lower-case hex, no
// function), which is what the kmsg rule captures as ${pci}.
func PCIKey(info nvml.PciInfo) string {
	return fmt.Sprintf("%04x:%02x:%02x", info.Domain, info.Bus, info.Device)
}
