package nvidia

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// GPUReport is one GPU's status with the findings about it: the JSON form
// of nodehealthctl gpu and of nvmlcheck's report.
type GPUReport struct {
	GPUStatus
	Findings []finding.Finding `json:"findings"`
}

// Report is per-GPU health as the daemon sees it.
type Report struct {
	NVML Status      `json:"nvml"`
	GPUs []GPUReport `json:"gpus"`
	// Node holds the accelerator findings that are about no one GPU
	// (Fabric Manager, the GPU count, NVSwitch SXids, GPUs NVML lost).
	Node []finding.Finding `json:"node"`
}

// NewReport attributes the AcceleratedHardwareReady findings among fs to
// the GPUs of st: a finding keyed by a GPU's PCI address, or by
// <pci>/<xid> as XIDs are, is that GPU's. The others go to the node.
func NewReport(st Status, fs []finding.Finding) Report {
	r := Report{NVML: st, Node: []finding.Finding{}}
	r.NVML.GPUs = nil
	for _, g := range st.GPUs {
		r.GPUs = append(r.GPUs, GPUReport{GPUStatus: g, Findings: []finding.Finding{}})
	}
	for _, f := range fs {
		if f.Condition != finding.AcceleratedHardwareReady {
			continue
		}
		owner := -1
		for i, g := range r.GPUs {
			if g.PCI != "" && (f.Key == g.PCI || strings.HasPrefix(f.Key, g.PCI+"/")) {
				owner = i
				break
			}
		}
		if owner < 0 {
			r.Node = append(r.Node, f)
			continue
		}
		r.GPUs[owner].Findings = append(r.GPUs[owner].Findings, f)
	}
	return r
}

// Write prints the report for people; stamp formats times.
func (r Report) Write(w io.Writer, stamp func(time.Time) string) {
	fmt.Fprintln(w, r.nvmlLine(stamp))
	for _, g := range r.GPUs {
		fmt.Fprintln(w)
		writeGPU(w, g, stamp)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Node")
	writeFindings(w, r.Node, stamp)
}

func (r Report) nvmlLine(stamp func(time.Time) string) string {
	s := r.NVML
	switch {
	case !s.Enabled:
		return "NVML: checks switched off (nvml.enabled: false in config.yaml); XIDs are still read from the kernel log"
	case s.Hung != "":
		return fmt.Sprintf("NVML: HUNG in %s since %s; the readings below are from the poll at %s", s.Hung, stamp(s.HungSince), stamp(s.LastPoll))
	case !s.Available:
		line := fmt.Sprintf("NVML: UNAVAILABLE since %s: %s", stamp(s.FailingSince), s.LastError)
		if !s.LastPoll.IsZero() {
			line += fmt.Sprintf("; the readings below are from the poll at %s", stamp(s.LastPoll))
		}
		return line
	}
	xid := "yes"
	if !s.XIDEvents {
		xid = "no (kernel log only)"
	}
	return fmt.Sprintf("NVML: available, driver %s, %d GPUs, XID events through NVML: %s, last poll %s",
		s.DriverVersion, s.Devices, xid, stamp(s.LastPoll))
}

func writeGPU(w io.Writer, g GPUReport, stamp func(time.Time) string) {
	verdict := "healthy"
	switch {
	case g.Lost:
		verdict = "LOST (NVML cannot reach it)"
	case g.ReadError != "":
		verdict = "NOT READ: " + g.ReadError
	case len(g.Findings) > 0:
		verdict = fmt.Sprintf("%d finding(s)", len(g.Findings))
	}
	fmt.Fprintf(w, "GPU %d  %s  %s  %s  — %s\n", g.Index, orDash(g.PCI), orDash(g.Name), orDash(g.UUID), verdict)
	if g.ReadError != "" || (g.Lost && g.PCI == "") {
		writeFindings(w, g.Findings, stamp)
		return
	}
	line := func(label, value, check string) {
		if value == "" {
			value = "not read: " + orDash(g.Unchecked[check])
		}
		fmt.Fprintf(w, "  %-14s %s\n", label, value)
	}
	var v string
	if g.TemperatureC != nil {
		v = fmt.Sprintf("%d C", *g.TemperatureC)
	}
	line("temperature", v, "temperature")
	v = ""
	if g.UncorrectedECC != nil {
		v = fmt.Sprintf("%d uncorrected since the last GPU reset", *g.UncorrectedECC)
	}
	line("ECC", v, "ecc")
	v = ""
	if p := g.RetiredPages; p != nil {
		v = fmt.Sprintf("%d SBE, %d DBE", p.SBE, p.DBE)
		if p.Pending {
			v += ", a retirement pending until reset"
		}
	}
	line("retired pages", v, "retiredPages")
	v = ""
	if r := g.RemappedRows; r != nil {
		v = fmt.Sprintf("%d correctable, %d uncorrectable", r.Correctable, r.Uncorrectable)
		if r.Pending {
			v += ", a remap pending until reset"
		}
		if r.Failed {
			v += ", a remap FAILED"
		}
	}
	line("remapped rows", v, "remappedRows")
	v = ""
	if l := g.NVLinks; l != nil {
		v = fmt.Sprintf("%d of %d links up", l.Up, l.Total)
	}
	line("NVLink", v, "nvlink")
	line("PCIe", pcieLine(g), "")
	v = ""
	if c := g.ClockEvents; c != nil {
		v = "none"
		if len(c.Reasons) > 0 {
			v = strings.Join(c.Reasons, ", ")
		}
	}
	line("clock events", v, "clockEvents")
	v = ""
	if f := g.Fabric; f != nil && f.State == fabricStatusName(nvml.GPU_FABRIC_STATE_NOT_SUPPORTED, nvml.SUCCESS) {
		v = "not an NVSwitch fabric GPU (NotSupported)"
	} else if f != nil {
		v = f.State
		if f.HealthMask != nil {
			v += fmt.Sprintf(", health mask 0x%x", *f.HealthMask)
		}
		if f.Summary != "" {
			v += ", summary " + f.Summary
		}
		if len(f.Faults) > 0 {
			v += ", faults: " + strings.Join(f.Faults, ", ")
		}
	}
	line("fabric", v, "fabric")
	line("InfoROM", g.InfoROM, "inforom")
	v = "none since monitoring started"
	if len(g.XIDs) > 0 {
		var xs []string
		for _, x := range g.XIDs {
			xs = append(xs, fmt.Sprintf("%d at %s", x.XID, stamp(x.At)))
		}
		v = strings.Join(xs, ", ")
	}
	line("XIDs (NVML)", v, "")
	writeFindings(w, g.Findings, stamp)
}

// pcieLine shows the link as nvidia-smi does (Gen5 x16), each part that
// could not be read with its reason.
func pcieLine(g GPUReport) string {
	p := g.PCIe
	if p == nil {
		p = &PCIeStatus{}
	}
	var parts []string
	if p.Gen > 0 || p.Width > 0 {
		var cur, top []string
		if p.Gen > 0 {
			cur, top = append(cur, fmt.Sprintf("Gen%d", p.Gen)), append(top, fmt.Sprintf("Gen%d", p.MaxGen))
		}
		if p.Width > 0 {
			cur, top = append(cur, fmt.Sprintf("x%d", p.Width)), append(top, fmt.Sprintf("x%d", p.MaxWidth))
		}
		parts = append(parts, fmt.Sprintf("%s (max %s)", strings.Join(cur, " "), strings.Join(top, " ")))
	}
	if p.PState != nil {
		parts = append(parts, fmt.Sprintf("P%d", *p.PState))
	}
	if p.Replays != nil {
		parts = append(parts, fmt.Sprintf("%d replays", *p.Replays))
	}
	for _, c := range []struct{ key, what string }{
		{"pcieLinkGen", "generation"}, {"pcieLinkWidth", "width"}, {"pstate", "performance state"}, {"pcieReplays", "replays"},
	} {
		if why, ok := g.Unchecked[c.key]; ok {
			parts = append(parts, fmt.Sprintf("%s not read: %s", c.what, why))
		}
	}
	return strings.Join(parts, ", ")
}

func writeFindings(w io.Writer, fs []finding.Finding, stamp func(time.Time) string) {
	if len(fs) == 0 {
		fmt.Fprintf(w, "  %-14s none\n", "findings")
		return
	}
	for i, f := range fs {
		label := ""
		if i == 0 {
			label = "findings"
		}
		when := "since " + stamp(f.Detected)
		if f.Severity == finding.Warning {
			when = "at " + stamp(f.Detected)
		}
		fmt.Fprintf(w, "  %-14s %s %s %s: %s\n", label, f.Severity, f.Reason, when, f.Message)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
