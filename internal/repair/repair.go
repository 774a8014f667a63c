// Package repair is the repair contract as nodehealthd relies on it: what
// EKS node auto repair does about a False condition and its reason
// (reboot or replace), and the escalations nodehealthd applies by default
// so that a GPU fault a reboot did not cure is reported under a reason EKS
// replaces the node for, instead of being rebooted again and again.
// Sources: /work/shared/platform.md §1 (EKS user guide node-repair.adoc and
// node-health-nma.adoc, NMA dcgm_policies.go).
package repair

import (
	"maps"
	"regexp"
	"strconv"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// Action is a repair action of an EKS managed node group
// (nodeRepairConfigOverrides[].repairAction).
type Action string

const (
	Replace Action = "Replace"
	Reboot  Action = "Reboot"
)

// xidActions is the EKS user guide's table of NVIDIA XIDs and their
// default actions (node-health-nma.adoc, 2026-01/02). XIDs it does not
// list have no documented per-reason action.
var xidActions = map[int]Action{
	13: Reboot, 31: Reboot, 48: Reboot, 63: Reboot, 64: Reboot, 94: Reboot, 95: Reboot,
	74: Replace, 79: Replace, 119: Replace, 120: Replace, 121: Replace, 140: Replace,
}

var xidReason = regexp.MustCompile(`^NvidiaXID(\d+)Error$`)

// ManagedNodeGroup returns the default action of an EKS managed node group
// for condition False with reason, and false where EKS documents none for
// the reason. Only AcceleratedHardwareReady is rebooted for; every other
// condition is replaced for. EKS Auto Mode and Karpenter replace for
// every condition (Karpenter 1.15+ with RebootForRepair follows the reason
// as managed node groups do).
func ManagedNodeGroup(condition, reason string) (Action, bool) {
	if condition != finding.AcceleratedHardwareReady {
		return Replace, true
	}
	m := xidReason.FindStringSubmatch(reason)
	if m == nil {
		return "", false
	}
	xid, _ := strconv.Atoi(m[1])
	a, ok := xidActions[xid]
	return a, ok
}

// DefaultEscalationTarget is the reason that the GPU memory XIDs EKS
// reboots for are escalated to when they recur after a reboot: XID 140
// (ECC unrecovered error), the replaced-for XID closest in meaning, so
// that a managed node group's per-reason repair and dashboards keyed on
// reasons see a replace. The condition message keeps the XID detected.
const DefaultEscalationTarget = "NvidiaXID140Error"

// defaultEscalations are the Fatal catalogue reasons EKS reboots for that
// are GPU hardware faults (not application XIDs such as 13, 31, 94, which
// the catalogue reports as warnings): a double-bit ECC error (48), a row
// remapping event or failure (63, 64) and an uncontained memory error (95)
// that survive a reboot point to the GPU's memory, which only a
// replacement cures (NVIDIA: reset, reboot, then replace if it persists).
var defaultEscalations = map[string]string{
	"NvidiaXID48Error": DefaultEscalationTarget,
	"NvidiaXID63Error": DefaultEscalationTarget,
	"NvidiaXID64Error": DefaultEscalationTarget,
	"NvidiaXID95Error": DefaultEscalationTarget,
}

// DefaultEscalation returns the reason a recurring reason escalates to
// unless config.yaml says otherwise, and whether it has one.
func DefaultEscalation(reason string) (string, bool) {
	to, ok := defaultEscalations[reason]
	return to, ok
}

// DefaultEscalations returns every default escalation, source reason to
// target reason.
func DefaultEscalations() map[string]string { return maps.Clone(defaultEscalations) }
