// Package condition turns active Fatal findings into the five node
// conditions, with the semantics repair automation depends on: the status
// flips only with the findings, lastTransitionTime moves only when the status
// flips, and the reason stays that of the oldest active finding.
package condition

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// Status values as Kubernetes writes them.
const (
	True  = "True"
	False = "False"
)

// Condition is one node condition as we own it.
type Condition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"`
	Reason             string    `json:"reason"`
	Message            string    `json:"message"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
}

// Accelerator is the kind of accelerated hardware on the node; it decides
// whether AcceleratedHardwareReady exists and its healthy reason.
type Accelerator string

const (
	NoAccelerator Accelerator = ""
	Nvidia        Accelerator = "nvidia"
	Neuron        Accelerator = "neuron"
)

// Healthy returns the reason and message of a True condition, identical to
// EKS's agent so that dashboards reading them keep working.
func Healthy(typ string, acc Accelerator) (reason, message string) {
	switch typ {
	case finding.KernelReady:
		return "KernelIsReady", "Monitoring for the Kernel system is active"
	case finding.StorageReady:
		return "DiskIsReady", "Monitoring for the Disk system is active"
	case finding.ContainerRuntimeReady:
		return "ContainerRuntimeIsReady", "Monitoring for the ContainerRuntime system is active"
	case finding.NetworkingReady:
		return "NetworkingIsReady", "Monitoring for the Networking system is active"
	case finding.AcceleratedHardwareReady:
		if acc == Neuron {
			return "NeuronAcceleratedHardwareIsReady", "Monitoring for the Neuron AcceleratedHardware system is active"
		}
		return "NvidiaGPUIsReady", "Monitoring for the Nvidia GPU system is active"
	}
	return "Ready", "Monitoring is active"
}

// Declared is a condition type an operator declared beyond the five
// (config.yaml conditions:), with what it says while healthy.
type Declared struct {
	HealthyReason  string `json:"healthyReason"`
	HealthyMessage string `json:"healthyMessage,omitempty"`
}

// healthy is Healthy for the five and the declared reason of the others.
func healthy(typ string, acc Accelerator, declared map[string]Declared) (reason, message string) {
	if d, ok := declared[typ]; ok && !finding.IsCondition(typ) {
		return d.HealthyReason, d.HealthyMessage
	}
	return Healthy(typ, acc)
}

// MaxMessageBytes bounds a condition message however many findings are
// active; the Node object is shared with the kubelet and must stay small.
const MaxMessageBytes = 1024

// Compute derives the monitored conditions from the active findings.
// prev carries the last computed conditions so that lastTransitionTime
// survives recomputation (and, via the state file, restarts). declared
// gives the healthy reason and message of monitored types beyond the five.
func Compute(prev map[string]Condition, monitored []string, acc Accelerator, declared map[string]Declared, active []finding.Finding, now time.Time) map[string]Condition {
	byType := map[string][]finding.Finding{}
	for _, f := range active {
		if f.Severity == finding.Fatal {
			byType[f.Condition] = append(byType[f.Condition], f)
		}
	}
	out := make(map[string]Condition, len(monitored))
	for _, typ := range monitored {
		c := Condition{Type: typ}
		fs := byType[typ]
		if len(fs) == 0 {
			c.Status = True
			c.Reason, c.Message = healthy(typ, acc, declared)
		} else {
			sort.SliceStable(fs, func(i, j int) bool {
				if !fs[i].Detected.Equal(fs[j].Detected) {
					return fs[i].Detected.Before(fs[j].Detected)
				}
				return fs[i].ID < fs[j].ID
			})
			c.Status = False
			c.Reason = fs[0].Reason
			c.Message = summarize(fs)
		}
		c.LastTransitionTime = now
		if p, ok := prev[typ]; ok && p.Status == c.Status && !p.LastTransitionTime.IsZero() {
			c.LastTransitionTime = p.LastTransitionTime
		} else if c.Status == False {
			// A condition turning False dates from the evidence, not from
			// when we got around to computing it (e.g. after a restart).
			c.LastTransitionTime = byType[typ][0].Detected
		}
		out[typ] = c
	}
	return out
}

// summarize lists the active findings oldest first, cut to MaxMessageBytes
// with a count of what was left out.
func summarize(fs []finding.Finding) string {
	var b strings.Builder
	for i, f := range fs {
		part := f.Reason + ": " + f.Message
		sep := ""
		if i > 0 {
			sep = "; "
		}
		more := fmt.Sprintf(" (+%d more)", len(fs)-i)
		if b.Len()+len(sep)+len(part) > MaxMessageBytes-len(more) && i > 0 {
			b.WriteString(more)
			return b.String()
		}
		b.WriteString(sep)
		b.WriteString(finding.Truncate(part, MaxMessageBytes-len(more)))
	}
	return b.String()
}

// AllHealthy reports whether every condition is True.
func AllHealthy(cs map[string]Condition) bool {
	for _, c := range cs {
		if c.Status != True {
			return false
		}
	}
	return true
}

// reasonRE is the API's format for a condition reason (metav1.Condition),
// which tools that parse reasons expect of node conditions too.
var reasonRE = regexp.MustCompile(`^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`)

// ValidReason checks a reason an operator names (a custom type's healthy
// reason, a plugin rule's reason).
func ValidReason(r string) error {
	if len(r) > 1024 || !reasonRE.MatchString(r) {
		return fmt.Errorf("reason %q must be a letter followed by letters, digits, '_', ',' or ':' (CamelCase, as EKS's reasons)", r)
	}
	return nil
}

// Types lists the types of cs for display: the five in their order, then
// custom types sorted.
func Types(cs map[string]Condition) []string {
	out := make([]string, 0, len(cs))
	for _, t := range finding.Conditions {
		if _, ok := cs[t]; ok {
			out = append(out, t)
		}
	}
	var custom []string
	for t := range cs {
		if !finding.IsCondition(t) {
			custom = append(custom, t)
		}
	}
	sort.Strings(custom)
	return append(out, custom...)
}
