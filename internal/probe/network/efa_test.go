package network

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"
)

// netEFADevice writes an InfiniBand device with one port and the given
// hardware counters.
func netEFADevice(t *testing.T, root, dev, vendor, device string, counters map[string]uint64) {
	t.Helper()
	base := "sys/class/infiniband/" + dev
	probetest.At(t, root).Write(base+"/device/vendor", vendor+"\n")
	probetest.At(t, root).Write(base+"/device/device", device+"\n")
	for c, v := range counters {
		probetest.At(t, root).Write(base+"/ports/1/hw_counters/"+c, fmt.Sprintf("%d\n", v))
	}
}

func TestNetEFAErrorMetric(t *testing.T) {
	root := t.TempDir()
	// Lifetime counters far above every bucket: the first poll is only
	// the baseline (NMA started from 0 and fired here, B10 quirk 9).
	netEFADevice(t, root, "rdmap0s31", "0x1d0f", "0xefa1", map[string]uint64{"rx_drops": 90_000, "retrans_pkts": 7_000_000})
	rig, clk, _ := probetest.At(t, root).Rig("efa", "")
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("first poll reported lifetime totals: %v", probetest.Reasons(res))
	}
	clk.Add(time.Minute)
	netEFADevice(t, root, "rdmap0s31", "0x1d0f", "0xefa1", map[string]uint64{"rx_drops": 90_500, "retrans_pkts": 7_000_500})
	res := rig.Check()
	r := probetest.Find(res, "EFAErrorMetric", "rdmap0s31:1/rx_drops")
	if r == nil || len(res) != 1 { // retrans_pkts +500 is within its bucket of 1000
		t.Fatalf("want rx_drops only, got %v", probetest.Reasons(res))
	}
	if r.Message != "rx_drops increased from 90000 to 90500 for device:port [rdmap0s31:1]" || r.Severity != "Warning" {
		t.Fatalf("result: %+v", r)
	}
	rig.Recovers("EFAErrorMetric", "rdmap0s31:1/rx_drops", func() {}, func() { clk.Add(time.Minute) })
}

func TestNetEFASteadyGrowthAndOtherDevices(t *testing.T) {
	root := t.TempDir()
	// A Mellanox device counts differently and is not EFA.
	netEFADevice(t, root, "mlx5_0", "0x15b3", "0x101b", map[string]uint64{"rx_drops": 0})
	rig, clk, _ := probetest.At(t, root).Rig("efa", "")
	for i := range 5 {
		// +50 per minute: the bucket refills 60 per minute.
		netEFADevice(t, root, "rdmap0s31", "0x1d0f", "0xefa0", map[string]uint64{"rx_drops": uint64(50 * i)})
		netEFADevice(t, root, "mlx5_0", "0x15b3", "0x101b", map[string]uint64{"rx_drops": uint64(1_000_000 * i)})
		if res := rig.Check(); len(res) != 0 {
			t.Fatalf("poll %d: %v", i, probetest.Reasons(res))
		}
		clk.Add(time.Minute)
	}
}

// Without an EFA device the probe is dormant, so that the runner checks it
// less and less often; a device showing up (a driver loaded late in boot)
// wakes it.
func TestNetEFANoDevices(t *testing.T) {
	root := t.TempDir()
	env, _, _ := probetest.At(t, root).Fake()
	p := probetest.Build(t, env, "efa", "")
	rig := probetest.NewRig(t, p, env)
	if res := rig.Check(); len(res) != 0 {
		t.Fatalf("no infiniband: %v", probetest.Reasons(res))
	}
	asleep := 0
	var waits []time.Duration
	for range 6 {
		rig.Check()
		waits = append(waits, probe.NextWait(p, &asleep))
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	if !slices.Equal(waits, want) {
		t.Errorf("waits without a device %v, want %v", waits, want)
	}
	// Another RDMA device is not EFA.
	netEFADevice(t, root, "mlx5_0", "0x15b3", "0x101b", map[string]uint64{"rx_drops": 0})
	rig.Check()
	if w := probe.NextWait(p, &asleep); w != 10*time.Minute {
		t.Errorf("wait with a Mellanox device only %v, want 10m", w)
	}
	netEFADevice(t, root, "rdmap0s31", "0x1d0f", "0xefa1", map[string]uint64{"rx_drops": 0})
	rig.Check()
	if w := probe.NextWait(p, &asleep); w != time.Minute {
		t.Errorf("wait once an EFA device appeared %v, want the period, 1m", w)
	}
}
