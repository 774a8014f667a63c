package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/nvidia"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// gpuDaemon stands in for a running daemon on dir that publishes st as the
// NVML detector's board (nil: a non-NVIDIA node, no section).
func gpuDaemon(t *testing.T, dir string, st *nvidia.Status) *state.Store {
	t.Helper()
	s, _, err := state.Open(dir, "boot-1", time.Now(), discardLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if st != nil {
		s.PublishLive(nvidia.LiveSection, func() any { return *st })
	}
	return s
}

func TestGPUWithoutDaemonOrGPU(t *testing.T) {
	dir := t.TempDir()
	rc, out, errs := ctl(t, "", "gpu", "--state-dir", dir)
	if rc != 1 || out != "" || !strings.Contains(errs, "no nodehealthd runs on "+dir) {
		t.Fatalf("no daemon: rc %d\nstdout %q\nstderr %q", rc, out, errs)
	}
	gpuDaemon(t, dir, nil)
	rc, out, errs = ctl(t, "", "gpu", "--state-dir", dir)
	if rc != 1 || out != "" || !strings.Contains(errs, "reports no GPU status: this is not an NVIDIA node") {
		t.Fatalf("non-NVIDIA node: rc %d\nstdout %q\nstderr %q", rc, out, errs)
	}
}

func TestGPUNVMLOff(t *testing.T) {
	dir := t.TempDir()
	s := gpuDaemon(t, dir, &nvidia.Status{})
	if err := s.Save(state.New("boot-1", time.Now()), time.Now()); err != nil {
		t.Fatal(err)
	}
	rc, out, errs := ctl(t, "", "gpu", "--state-dir", dir)
	if rc != 0 || !strings.Contains(out, "NVML: checks switched off (nvml.enabled: false in config.yaml)") {
		t.Fatalf("rc %d\n%s\n%s", rc, out, errs)
	}
}

func TestGPUShowsTheDaemonsReadingsAndFindings(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	temp, ecc, replays, p0 := uint32(83), uint64(2), uint64(17), 0
	mask := uint32(0x1aa)
	st := nvidia.Status{Enabled: true, Available: true, DriverVersion: "570.172.08", Devices: 2, XIDEvents: true, LastPoll: now,
		GPUs: []nvidia.GPUStatus{
			{Index: 0, PCI: "0000:10:00", Name: "NVIDIA H100 80GB HBM3", UUID: "GPU-aaaa", TemperatureC: &temp, UncorrectedECC: &ecc,
				RemappedRows: &nvidia.RemappedRows{Uncorrectable: 1, Pending: true}, NVLinks: &nvidia.NVLinks{Up: 17, Total: 18},
				PCIe:        &nvidia.PCIeStatus{Gen: 5, MaxGen: 5, Width: 8, MaxWidth: 16, Replays: &replays, PState: &p0},
				ClockEvents: &nvidia.ClockEvents{Mask: 0x48, Reasons: []string{"hw_slowdown", "hw_thermal"}},
				Fabric:      &nvidia.FabricStatus{State: "Success", HealthMask: &mask, Summary: "Healthy"},
				InfoROM:     "valid", XIDs: []nvidia.XIDEvent{{XID: 48, At: now}},
				Unchecked: map[string]string{"retiredPages": "not supported by this GPU"}},
			{Index: 1, PCI: "0000:11:00", Name: "NVIDIA H100 80GB HBM3", UUID: "GPU-bbbb", InfoROM: "valid"},
		}}
	s := gpuDaemon(t, dir, &st)
	saved := state.New("boot-1", now)
	var ch state.Changes
	acc := finding.AcceleratedHardwareReady
	for _, f := range []finding.Finding{
		{Condition: acc, Reason: "NvidiaXID48Error", Key: "0000:10:00/48", Severity: finding.Fatal, Message: "detected XID-48 on the instance", Source: "kmsg"},
		{Condition: acc, Reason: nvidia.ReasonThermalError, Key: "0000:10:00", Severity: finding.Warning, Message: "clocks slowed down (hw_thermal)", Source: "nvml"},
		{Condition: acc, Reason: nvidia.ReasonFabricManager, Severity: finding.Fatal, Message: "Fabric Manager status: NotStarted", Source: "nvml"},
	} {
		f.Detected, f.LastSeen, f.Count = now, now, 1
		saved.Raise(f, false, &ch)
	}
	if err := s.Save(saved, now); err != nil {
		t.Fatal(err)
	}

	rc, out, errs := ctl(t, "", "gpu", "--state-dir", dir)
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, errs)
	}
	for _, want := range []string{
		"NVML: available, driver 570.172.08, 2 GPUs, XID events through NVML: yes",
		"GPU 0  0000:10:00  NVIDIA H100 80GB HBM3  GPU-aaaa  — 2 finding(s)",
		"  temperature    83 C\n",
		"  ECC            2 uncorrected since the last GPU reset\n",
		"  retired pages  not read: not supported by this GPU\n",
		"  remapped rows  0 correctable, 1 uncorrectable, a remap pending until reset\n",
		"  NVLink         17 of 18 links up\n",
		"  PCIe           Gen5 x8 (max Gen5 x16), P0, 17 replays\n",
		"  clock events   hw_slowdown, hw_thermal\n",
		"  fabric         Success, health mask 0x1aa, summary Healthy\n",
		"  InfoROM        valid\n",
		"  XIDs (NVML)    48 at ",
		"  findings       Fatal NvidiaXID48Error since ",
		"Warning NvidiaThermalError at ",
		"GPU 1  0000:11:00  NVIDIA H100 80GB HBM3  GPU-bbbb  — healthy",
		"Node\n  findings       Fatal FabricManagerNotRunning since ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	rc, out, errs = ctl(t, "", "gpu", "-o", "json", "--state-dir", dir)
	if rc != 0 {
		t.Fatalf("rc %d: %s", rc, errs)
	}
	var r nvidia.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(r.GPUs) != 2 || len(r.GPUs[0].Findings) != 2 || len(r.GPUs[1].Findings) != 0 || len(r.Node) != 1 ||
		*r.GPUs[0].TemperatureC != 83 || r.GPUs[0].PCIe.Width != 8 || r.NVML.DriverVersion != "570.172.08" {
		t.Fatalf("report %+v", r)
	}
}

// TestGPUWithoutStateFile: the readings come from the daemon; findings
// that cannot be read are said to be missing, not silently dropped.
func TestGPUWithoutStateFile(t *testing.T) {
	dir := t.TempDir()
	gpuDaemon(t, dir, &nvidia.Status{Enabled: true, Available: true, Devices: 1, GPUs: []nvidia.GPUStatus{{Index: 0, PCI: "0000:10:00"}}})
	rc, out, errs := ctl(t, "", "gpu", "--state-dir", dir)
	if rc != 0 || !strings.Contains(out, "GPU 0  0000:10:00") || !strings.Contains(errs, "cannot read the findings") {
		t.Fatalf("rc %d\n%s\n%s", rc, out, errs)
	}
}
