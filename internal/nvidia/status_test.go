package nvidia

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

func TestStatusBoardPerGPU(t *testing.T) {
	f := newFakeNVML(t, 3)
	f.gpus[0].set(func(g *fakeGPU) {
		g.temp, g.dbe, g.replays = 77, 2, 12
		g.clocks = clkHwSlowdown | clkHwThermal | nvml.ClocksEventReasonSwPowerCap
		g.fabState, g.fabStat, g.fabMask, g.fabSum = nvml.GPU_FABRIC_STATE_COMPLETED, nvml.SUCCESS, 0x10, nvml.GPU_FABRIC_HEALTH_SUMMARY_UNHEALTHY
		g.width, g.gen, g.pstate = 8, 3, nvml.PSTATE_2
		g.links = []bool{true, false, true}
		g.pagesRet, g.sbePages, g.dbePages, g.pending = nvml.SUCCESS, 1, 2, true
		g.remap = [4]int{3, 1, 1, 0}
	})
	// Everything the second GPU cannot do: no finding, and the status
	// says why.
	f.gpus[1].set(func(g *fakeGPU) {
		g.tempRet, g.linkRet, g.pstateRet, g.inforomRet, g.clockRet = nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_NOT_SUPPORTED,
			nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_NOT_SUPPORTED
		g.links, g.fabRet, g.remapRet = nil, nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_UNKNOWN
	})
	f.gpus[2].set(func(g *fakeGPU) { g.eccRet, g.pcieRet = nvml.ERROR_GPU_IS_LOST, nvml.ERROR_GPU_IS_LOST })
	o := f.options()
	_, s := f.session(o)
	f.poll(s)
	st := o.Status.Get()
	if len(st.GPUs) != 3 || st.LastPoll != f.clock() {
		t.Fatalf("status %+v", st)
	}

	g := st.GPUs[0]
	u32 := func(v uint32) *uint32 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	two := 2
	want := GPUStatus{Index: 0, PCI: "0000:10:00", Name: "NVIDIA H100 80GB HBM3", UUID: "GPU-00000010",
		TemperatureC: u32(77), UncorrectedECC: u64(2),
		RetiredPages: &RetiredPages{SBE: 1, DBE: 2, Pending: true},
		RemappedRows: &RemappedRows{Correctable: 3, Uncorrectable: 1, Pending: true},
		NVLinks:      &NVLinks{Up: 2, Total: 3},
		PCIe:         &PCIeStatus{Gen: 3, MaxGen: 5, Width: 8, MaxWidth: 16, Replays: u64(12), PState: &two},
		ClockEvents:  &ClockEvents{Mask: clkHwSlowdown | clkHwThermal | nvml.ClocksEventReasonSwPowerCap, Reasons: []string{"sw_power_cap", "hw_slowdown", "hw_thermal"}},
		Fabric:       &FabricStatus{State: "Success", HealthMask: u32(0x10), Faults: []string{"route_unhealthy=1", "health_summary=unhealthy"}, Summary: "Unhealthy"},
		InfoROM:      "valid",
	}
	if !reflect.DeepEqual(g, want) {
		t.Fatalf("GPU 0:\n got %+v\nwant %+v", g, want)
	}

	g = st.GPUs[1]
	wantUnread := map[string]string{
		"temperature": "not supported by this GPU", "pcieLinkWidth": "not supported by this GPU", "pcieLinkGen": "not supported by this GPU",
		"pstate": "not supported by this GPU", "clockEvents": "not supported by this GPU", "nvlink": "not supported by this GPU",
		"fabric": "not supported by this GPU", "remappedRows": "NVML error: ERROR_UNKNOWN", "retiredPages": "not supported by this GPU",
		"inforom": "not supported by this GPU",
	}
	if !reflect.DeepEqual(g.Unchecked, wantUnread) {
		t.Fatalf("GPU 1 unchecked:\n got %v\nwant %v", g.Unchecked, wantUnread)
	}
	if g.TemperatureC != nil || g.ClockEvents != nil || g.Fabric != nil || g.InfoROM != "" || g.PCIe == nil || g.PCIe.Replays == nil || g.PCIe.Width != 0 {
		t.Fatalf("GPU 1 %+v", g)
	}
	if !st.GPUs[2].Lost || st.GPUs[2].UncorrectedECC != nil {
		t.Fatalf("GPU 2 %+v", st.GPUs[2])
	}
}

func TestStatusBoardXIDsAndUnreadableGPU(t *testing.T) {
	f := newFakeNVML(t, 2)
	o := f.options()
	_, s := f.session(o)
	f.poll(s)
	for i, xid := range []uint64{13, 31, 43, 45, 48, 79} {
		f.advance(time.Second)
		if err := s.xid(context.Background(), nvml.EventData{EventType: nvml.EventTypeXidCriticalError, EventData: xid, Device: f.gpus[1].dev}, &collector{}); err != nil {
			t.Fatal(err)
		}
		// At once, not at the next poll.
		if got := o.Status.Get().GPUs[1].XIDs; len(got) != min(i+1, maxXIDs) || got[len(got)-1].XID != xid || !got[len(got)-1].At.Equal(f.clock()) {
			t.Fatalf("after XID %d: %+v", xid, got)
		}
	}
	if got := o.Status.Get().GPUs[1].XIDs; got[0].XID != 31 {
		t.Fatalf("kept %+v, want the latest %d", got, maxXIDs)
	}
	// Polls keep them.
	f.next(s)
	if got := o.Status.Get().GPUs; len(got[1].XIDs) != maxXIDs || len(got[0].XIDs) != 0 {
		t.Fatalf("after a poll: %+v", got)
	}

	// A GPU whose read fails as a whole (here: a panicking mock) is listed
	// with the error, not dropped.
	f.gpus[0].dev.GetTemperatureFunc = nil
	f.next(s)
	if g := o.Status.Get().GPUs[0]; g.PCI != "0000:10:00" || g.ReadError == "" || g.TemperatureC != nil {
		t.Fatalf("unreadable GPU %+v", g)
	}
}

// TestStatusBoardConcurrentReaders: the lock socket reads the board while
// the detector writes it.
func TestStatusBoardConcurrentReaders(t *testing.T) {
	f := newFakeNVML(t, 2)
	o := f.options()
	_, s := f.session(o)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, g := range o.Status.Get().GPUs {
				_ = len(g.XIDs)
				_ = g.Unchecked["x"]
			}
		}
	}()
	for i := 0; i < 20; i++ {
		f.poll(s)
		_ = s.xid(context.Background(), nvml.EventData{EventType: nvml.EventTypeXidCriticalError, EventData: 79, Device: f.gpus[0].dev}, &collector{})
	}
	close(stop)
	wg.Wait()
}
