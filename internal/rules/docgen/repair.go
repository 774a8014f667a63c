package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/reason"
	"github.com/nodehealthd/nodehealthd/internal/repair"
	"github.com/nodehealthd/nodehealthd/internal/rules"
)

// renderRepair documents, for every Fatal reason, what EKS node auto repair
// does about it and the escalation the daemon applies by default when it
// recurs after a reboot (internal/repair).
func renderRepair(w io.Writer, cat *rules.File, infos []reason.Reason) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("<a id=\"repair-actions\"></a>\n")
	p("## Repair actions: reboot or replace\n\n")
	p("EKS Auto Mode and Karpenter replace a node for every condition that stays `False` past its\n")
	p("toleration (10 min for AcceleratedHardwareReady, 30 min for the others). EKS managed node groups\n")
	p("(and Karpenter 1.15+ with its `RebootForRepair` feature gate) choose per reason for\n")
	p("AcceleratedHardwareReady: the EKS user guide's table reboots for some NVIDIA XIDs and replaces for\n")
	p("others, and every other condition is replaced for. A managed node group's\n")
	p("`nodeRepairConfigOverrides` can change the action of any reason. (StorageReady is \"Replace\" in\n")
	p("one revision of the guide and has no action in another.) \"Not listed\" means EKS documents\n")
	p("no action for the reason; check your node group's behaviour before relying on it.\n\n")
	p("A fault that a reboot does not cure is rebooted for again and again. nodehealthd remembers the\n")
	p("boots each Fatal reason was seen in (the last %d boots of up to %d reasons, in the state file):\n", policy.MaxBootsPerReason, policy.MaxHistoryReasons)
	p("when a reason that a reboot clears is seen again within its window (%s by default) of a\n", human(policy.DefaultRecurWithin))
	p("sighting in an earlier boot, the condition message says so (`… (recurred after 2 reboots in\n")
	p("24h)`), a [`RecurredAfterReboot`](#recurredafterreboot) event is sent, and an escalation\n")
	p("(`reasons.<Reason>.escalate`, see [the operator guide](operator-guide.md#recurrence-after-reboots))\n")
	p("reports it as another reason of the same condition. The defaults below escalate the GPU memory\n")
	p("XIDs EKS reboots for to `%s`, which EKS replaces for, after one reboot within %s.\n\n", repair.DefaultEscalationTarget, human(policy.DefaultRecurWithin))
	p("| Reason | Condition | Managed node group default | Recurring after a reboot is reported as |\n|---|---|---|---|\n")
	seen := map[string]bool{}
	row := func(name, cond string) {
		if seen[name] {
			return
		}
		seen[name] = true
		action := "not listed"
		if a, ok := repair.ManagedNodeGroup(cond, name); ok {
			action = string(a)
		}
		esc := "—"
		if to, ok := repair.DefaultEscalation(name); ok {
			esc = code(to)
		}
		p("| %s | %s | %s | %s |\n", code(name), cond, action, esc)
	}
	for _, c := range finding.Conditions {
		for _, r := range cat.Rules {
			if r.Condition != c || r.Severity != string(finding.Fatal) {
				continue
			}
			refs := reason.Refs(r.Reason)
			if len(refs) == 1 && r.CaptureIn != nil && r.CaptureIn.Group == refs[0] {
				vals := slices.Clone(cat.Sets[r.CaptureIn.Set])
				slices.SortFunc(vals, func(a, b string) int { return numeric(a) - numeric(b) })
				for _, v := range vals {
					row(reason.Expand(r.Reason, func(string) string { return v }), c)
				}
				continue
			}
			row(r.Reason, c)
		}
		for _, in := range infos {
			if in.Condition == c && in.Severity == finding.Fatal {
				row(in.Name, c)
			}
		}
	}
	p("\n")
}

func numeric(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
