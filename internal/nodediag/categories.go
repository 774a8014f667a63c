package nodediag

import (
	"fmt"
	"slices"
	"strings"
)

// Categories are NodeDiagnostic's logCapture categories, in the CRD's order.
var Categories = []string{"Base", "Device", "Networking", "Runtime", "System", "All"}

// CategorySections maps each category onto the bundle's sections
// (diag.Sections), after what the reference agent collects for it
// (shared/detection.md B6). The bundle's own layout is kept: a category
// brings whole sections, so a section shared by two categories (system) is
// collected once. docs/diagnostics.md has the table.
var CategorySections = map[string][]string{
	// syslog/messages, cloud-init logs, instance facts.
	"Base": {"system"},
	// CSI and accelerator diagnostics; the block devices they serve.
	"Device": {"gpu", "neuron", "storage"},
	// CNI configuration and logs, iptables/nft, routes, rules, resolv.conf.
	"Networking": {"network"},
	// containerd and kubelet configuration, their journals.
	"Runtime": {"containerd", "kubernetes", "journal"},
	// mounts, df, lsblk, dmesg, sysctl, units, processes, pressure.
	"System": {"system", "kernel", "storage", "journal"},
}

// alwaysSections are in every requested bundle: the daemon's own state and
// configuration, small, and what explains the node's conditions.
var alwaysSections = []string{"nodehealthd"}

// Sections returns the bundle sections for categories: nil for everything
// (All, or no categories, the CRD's default), else alwaysSections and each
// category's. An unknown category is an error naming it, so that the
// status says what was wrong with the request.
func Sections(categories []string) ([]string, error) {
	if len(categories) == 0 {
		return nil, nil
	}
	var out []string
	for _, c := range categories {
		if c == "All" {
			return nil, nil
		}
		s, ok := CategorySections[c]
		if !ok {
			return nil, fmt.Errorf("unknown category %q (want some of %s)", c, strings.Join(Categories, ", "))
		}
		out = append(out, s...)
	}
	out = append(out, alwaysSections...)
	slices.Sort(out)
	return slices.Compact(out), nil
}
