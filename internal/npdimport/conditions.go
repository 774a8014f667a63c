package npdimport

import (
	"fmt"
	"strings"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/source"
)

// KnownConditions maps the condition types of NPD's shipped configs to the
// nodehealthd condition that a permanent rule setting them turns False.
// docs/rules.md ("Moving from node-problem-detector") prints this table.
var KnownConditions = map[string]string{
	"KernelDeadlock":                finding.KernelReady,
	"CperHardwareErrorFatal":        finding.KernelReady,
	"FrequentUnregisterNetDevice":   finding.KernelReady,
	"ReadonlyFilesystem":            finding.StorageReady,
	"XfsShutdown":                   finding.StorageReady,
	"DiskBadBlock":                  finding.StorageReady,
	"CorruptDockerOverlay2":         finding.ContainerRuntimeReady,
	"DockerContainerStartupFailure": finding.ContainerRuntimeReady,
	"FrequentKubeletRestart":        finding.ContainerRuntimeReady,
	"FrequentDockerRestart":         finding.ContainerRuntimeReady,
	"FrequentContainerdRestart":     finding.ContainerRuntimeReady,
	"KubeletProblem":                finding.ContainerRuntimeReady,
	"ContainerRuntimeProblem":       finding.ContainerRuntimeReady,
}

// KnownEventReasons gives the condition a Warning converted from a
// temporary rule of NPD's shipped configs is filed under (events name it;
// an operator who makes the reason Fatal in config.yaml sets it).
var KnownEventReasons = map[string]string{
	"OOMKilling":                    finding.KernelReady,
	"TaskHung":                      finding.KernelReady,
	"UnregisterNetDevice":           finding.KernelReady,
	"KernelOops":                    finding.KernelReady,
	"MemoryReadError":               finding.KernelReady,
	"CperHardwareErrorCorrected":    finding.KernelReady,
	"CperHardwareErrorRecoverable":  finding.KernelReady,
	"Ext4Error":                     finding.StorageReady,
	"Ext4Warning":                   finding.StorageReady,
	"IOError":                       finding.StorageReady,
	"CorruptDockerImage":            finding.ContainerRuntimeReady,
	"DockerContainerStartupFailure": finding.ContainerRuntimeReady,
	"KubeletStart":                  finding.ContainerRuntimeReady,
	"DockerStart":                   finding.ContainerRuntimeReady,
	"ContainerdStart":               finding.ContainerRuntimeReady,
}

// runtimeIdentifiers are journal identifiers whose temporary rules are
// filed under ContainerRuntimeReady when their reason is not known.
var runtimeIdentifiers = map[string]bool{
	"dockerd": true, "docker": true, "containerd": true, "crio": true, "kubelet": true,
}

// ParseConditionMap reads --condition-map values "NPDName=Condition".
func ParseConditionMap(vals []string) (map[string]string, error) {
	m := map[string]string{}
	for _, v := range vals {
		k, c, ok := strings.Cut(v, "=")
		k, c = strings.TrimSpace(k), strings.TrimSpace(c)
		if !ok || k == "" {
			return nil, fmt.Errorf("condition map %q: want NPDType=Condition", v)
		}
		if !finding.IsCondition(c) {
			return nil, fmt.Errorf("condition map %q: %q is not one of %s", v, c, strings.Join(finding.Conditions, ", "))
		}
		m[k] = c
	}
	return m, nil
}

// permanentCondition is the condition a permanent rule's NPD condition
// type maps to, or "".
func (o Options) permanentCondition(npdType string) string {
	if c, ok := o.ConditionMap[npdType]; ok {
		return c
	}
	return KnownConditions[npdType]
}

// eventCondition is the condition a temporary rule's Warning is filed
// under, or "".
func (o Options) eventCondition(reason string, kind source.Kind, idents []string) string {
	if c, ok := o.ConditionMap[reason]; ok {
		return c
	}
	if c, ok := KnownEventReasons[reason]; ok {
		return c
	}
	if kind == source.KindKmsg {
		return finding.KernelReady
	}
	for _, id := range idents {
		if runtimeIdentifiers[id] {
			return finding.ContainerRuntimeReady
		}
	}
	return ""
}
