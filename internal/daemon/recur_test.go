package daemon

import (
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

func recurrenceEvents(st *state.State) []finding.Finding {
	var out []finding.Finding
	for _, f := range st.Recent {
		if f.Reason == policy.ReasonRecurredAfterReboot {
			out = append(out, f)
		}
	}
	return out
}

// TestRecurrenceAfterReboot: a Fatal finding cleared by a reboot and seen
// again in the next boot is marked as a recurrence and announced once; a
// restart within the boot neither counts as a reboot nor announces it
// again; the second reboot escalates it as configured.
func TestRecurrenceAfterReboot(t *testing.T) {
	h := newHarness(t)
	h.write("rules.d/escalated.yaml", "rules:\n"+kmsgRule("BoomReplaced", "Fatal", "never logged"))
	h.write("config.yaml", "reasons:\n  Boom:\n    escalate: {afterReboots: 2, within: 24h, reason: BoomReplaced}\n")
	h.start()
	st := h.raiseBoom()
	if st.Active[0].Recurrence != nil || len(recurrenceEvents(st)) != 0 {
		t.Fatalf("first boot: %+v", st.Active[0].Recurrence)
	}
	h.stop()

	h.write("proc/sys/kernel/random/boot_id", "boot-2\n")
	h.start()
	h.waitState(func(st *state.State) bool { return len(st.Active) == 0 })
	st = h.raiseBoom()
	c := st.Conditions[finding.KernelReady]
	if r := st.Active[0].Recurrence; r == nil || r.Reboots != 1 || r.Escalated || !strings.Contains(c.Message, "boom on sda (recurred after 1 reboot in 24h)") {
		t.Fatalf("second boot: recurrence %+v, condition %+v", r, c)
	}
	evs := recurrenceEvents(st)
	if len(evs) != 1 || evs[0].Severity != finding.Warning || evs[0].Condition != finding.KernelReady ||
		evs[0].Message != "Boom (sda) recurred after 1 reboot in 24h" {
		t.Fatalf("events: %+v", evs)
	}
	h.stop()

	// A restart in the same boot: the finding stays, its repeat is no
	// new recurrence.
	h.start()
	h.send("boom sda")
	st = h.waitState(func(st *state.State) bool { return len(st.Active) == 1 && st.Active[0].Count == 2 })
	if n := len(recurrenceEvents(st)); n != 1 || st.Active[0].Recurrence.Reboots != 1 {
		t.Fatalf("after a restart: %d events, recurrence %+v", n, st.Active[0].Recurrence)
	}
	if ss := st.History["Boom"]; len(ss) != 2 || ss[0].BootID != "boot-1" || ss[1].BootID != "boot-2" || ss[1].Key != "sda" {
		t.Fatalf("history %+v", st.History)
	}
	h.stop()

	h.write("proc/sys/kernel/random/boot_id", "boot-3\n")
	h.start()
	defer h.stop()
	h.send("boom sda")
	st = h.waitActive("BoomReplaced/sda")
	c = st.Conditions[finding.KernelReady]
	if c.Reason != "BoomReplaced" || !strings.Contains(c.Message, "(Boom recurred after 2 reboots in 24h, escalated)") {
		t.Fatalf("escalated condition: %+v", c)
	}
	evs = recurrenceEvents(st)
	if len(evs) != 2 || evs[1].Message != "Boom (sda) recurred after 2 reboots in 24h; reported as BoomReplaced from now on" {
		t.Fatalf("events: %+v", evs)
	}
}
