package nvidia

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

func TestReportAttributesFindings(t *testing.T) {
	acc := finding.AcceleratedHardwareReady
	st := Status{Enabled: true, Available: true, Devices: 2, GPUs: []GPUStatus{
		{Index: 0, PCI: "0000:10:00"}, {Index: 1, PCI: "0000:11:00"}, {Index: 2, Lost: true},
	}}
	fs := []finding.Finding{
		{Condition: acc, Reason: "NvidiaXID79Error", Key: "0000:11:00/79", Severity: finding.Fatal},
		{Condition: acc, Reason: ReasonDoubleBitError, Key: "0000:10:00", Severity: finding.Fatal},
		// Another GPU whose address begins the same way is not this one.
		{Condition: acc, Reason: ReasonPCIeError, Key: "0000:10:001", Severity: finding.Warning},
		{Condition: acc, Reason: "NvidiaSXID12028Error", Key: "0000:05:00/12028", Severity: finding.Fatal},
		{Condition: acc, Reason: ReasonDeviceCountMismatch, Key: countKeyFiles, Severity: finding.Fatal},
		{Condition: finding.KernelReady, Reason: "SoftLockup", Key: "0000:10:00", Severity: finding.Warning},
	}
	r := NewReport(st, fs)
	reasons := func(fs []finding.Finding) string {
		var s []string
		for _, f := range fs {
			s = append(s, f.Reason)
		}
		return strings.Join(s, ",")
	}
	if got := reasons(r.GPUs[0].Findings); got != ReasonDoubleBitError {
		t.Errorf("GPU 0: %s", got)
	}
	if got := reasons(r.GPUs[1].Findings); got != "NvidiaXID79Error" {
		t.Errorf("GPU 1: %s", got)
	}
	if got := reasons(r.GPUs[2].Findings); got != "" {
		t.Errorf("lost GPU without an address: %s", got)
	}
	if got := reasons(r.Node); got != "NvidiaPCIeError,NvidiaSXID12028Error,NvidiaDeviceCountMismatch" {
		t.Errorf("node: %s", got)
	}
	if r.NVML.GPUs != nil {
		t.Error("the GPUs are listed twice")
	}
}

func TestReportSaysWhyNVMLIsNotRead(t *testing.T) {
	stamp := func(t time.Time) string { return t.UTC().Format("15:04") }
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		st   Status
		want string
	}{
		{Status{}, "NVML: checks switched off (nvml.enabled: false in config.yaml)"},
		{Status{Enabled: true, LastError: "NVML: the NVIDIA kernel driver is not loaded", FailingSince: at},
			"NVML: UNAVAILABLE since 12:00: NVML: the NVIDIA kernel driver is not loaded\n"},
		{Status{Enabled: true, Hung: "read GPU 0000:10:00", HungSince: at, LastPoll: at.Add(-time.Minute)},
			"NVML: HUNG in read GPU 0000:10:00 since 12:00; the readings below are from the poll at 11:59"},
		{Status{Enabled: true, Available: true, DriverVersion: "570.1", Devices: 8, LastPoll: at},
			"NVML: available, driver 570.1, 8 GPUs, XID events through NVML: no (kernel log only), last poll 12:00"},
	} {
		var b bytes.Buffer
		NewReport(c.st, nil).Write(&b, stamp)
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("got\n%s\nwant %q", b.String(), c.want)
		}
	}
}
