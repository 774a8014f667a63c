package nvidia

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

func TestSelfCheck(t *testing.T) {
	f := newFakeNVML(t, 2)
	var out bytes.Buffer
	check := func() error {
		out.Reset()
		return SelfCheck(context.Background(), CheckOptions{Lib: f.lib, Root: f.root, Out: &out, InstanceType: f.instanceType, fabric: testFabric(f.gpus)})
	}
	if err := check(); err != nil {
		t.Fatalf("healthy machine: SelfCheck = %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "GPU 1  0000:11:00  NVIDIA H100 80GB HBM3  GPU-00000011  — healthy") {
		t.Fatalf("report lacks the healthy GPU:\n%s", out.String())
	}

	f.gpus[1].set(func(g *fakeGPU) { g.dbe = 1; g.width = 8 })
	err := check()
	if !errors.Is(err, ErrUnhealthy) || errors.Is(err, ErrUnread) {
		t.Fatalf("SelfCheck = %v, want ErrUnhealthy alone\n%s", err, out.String())
	}
	for _, want := range []string{
		"driver 570.172.08, NVML 12.570.172.08",
		"GPUs: 2 usable, 0 unreachable",
		"/dev/nvidia<N>: 2 (err <nil>)",
		"XID events through NVML: true",
		"GPU 1 0000:11:00 NVIDIA H100 80GB HBM3",
		"ECC uncorrected (volatile)         SUCCESS                    1  [ok]",
		"PCIe link width current/max        SUCCESS                    x8/x16  [ok]",
		"InfoROM validation                 SUCCESS                    true  [ok]",
		"GPU 0  0000:10:00  NVIDIA H100 80GB HBM3  GPU-00000010  — healthy",
		"GPU 1  0000:11:00  NVIDIA H100 80GB HBM3  GPU-00000011  — 2 finding(s)",
		"  PCIe           Gen5 x8 (max Gen5 x16), P0, 0 replays\n",
		"  findings       Fatal NvidiaDoubleBitError since ",
		"Warning NvidiaPCIeError at ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// Polls raise an active Fatal finding each time; the report lists it
	// once.
	if n := strings.Count(out.String(), "NvidiaDoubleBitError"); n != 1 {
		t.Errorf("NvidiaDoubleBitError listed %d times:\n%s", n, out.String())
	}

	// A read that fails is a check that could not run.
	f.gpus[1].set(func(g *fakeGPU) { g.dbe = 0; g.width = 16 })
	f.gpus[0].set(func(g *fakeGPU) { g.pcieRet = nvml.ERROR_UNKNOWN })
	if err := check(); !errors.Is(err, ErrUnread) || errors.Is(err, ErrUnhealthy) || !strings.Contains(out.String(), "[FAILED]") {
		t.Fatalf("SelfCheck = %v with a failing read:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "replays not read: NVML error: ERROR_UNKNOWN") {
		t.Fatalf("report does not say why the replays were not read:\n%s", out.String())
	}
}

// TestSelfCheckFabricNotStarted: run by hand on a booted machine, a
// fabric that has not come up is a failure at once, not after the
// daemon's start grace.
func TestSelfCheckFabricNotStarted(t *testing.T) {
	f := newFakeNVML(t, 1)
	f.gpus[0].set(func(g *fakeGPU) { g.fabState = nvml.GPU_FABRIC_STATE_NOT_STARTED })
	var out bytes.Buffer
	err := SelfCheck(context.Background(), CheckOptions{Lib: f.lib, Root: f.root, Out: &out, fabric: testFabric(f.gpus)})
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(out.String(), "Fatal FabricManagerNotRunning since") {
		t.Fatalf("SelfCheck = %v\n%s", err, out.String())
	}
}

func TestSelfCheckJSON(t *testing.T) {
	f := newFakeNVML(t, 2)
	f.gpus[0].set(func(g *fakeGPU) { g.inforomRet = nvml.ERROR_CORRUPTED_INFOROM; g.links = nil })
	var out bytes.Buffer
	err := SelfCheck(context.Background(), CheckOptions{Lib: f.lib, Root: f.root, Out: &out, JSON: true, fabric: testFabric(f.gpus)})
	if !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("SelfCheck = %v", err)
	}
	var r Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if len(r.GPUs) != 2 || !r.NVML.Available || r.NVML.Devices != 2 {
		t.Fatalf("report %+v", r)
	}
	g := r.GPUs[0]
	if g.InfoROM != "corrupt" || len(g.Findings) != 1 || g.Findings[0].Reason != ReasonInfoROM ||
		g.Unchecked["nvlink"] != "not supported by this GPU" || g.NVLinks != nil {
		t.Fatalf("GPU 0 %+v", g)
	}
	if len(r.GPUs[1].Findings) != 0 || r.GPUs[1].InfoROM != "valid" {
		t.Fatalf("GPU 1 %+v", r.GPUs[1])
	}
}

func TestSelfCheckWithoutLibrary(t *testing.T) {
	// The real library loader on a machine without the NVIDIA driver
	// (this test machine): a clear error, no crash.
	err := SelfCheck(context.Background(), CheckOptions{Lib: OpenLibrary("/nonexistent/libnvidia-ml.so.1"), Root: t.TempDir(), Out: &bytes.Buffer{}})
	if !errors.Is(err, ErrNoLibrary) {
		t.Fatalf("SelfCheck = %v, want ErrNoLibrary", err)
	}
}
