package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// --- IODelays ------------------------------------------------------------

// ioDelaysBaseline builds io-delays from section on a host running pr and
// takes the first check, which only records each process's ticks.
func ioDelaysBaseline(t *testing.T, section string, pr probetest.Proc) (*probetest.Tree, *probe.Env, probe.Probe) {
	ft := probetest.NewTree(t)
	ft.Proc(pr)
	env := ft.Env()
	p := probetest.Build(t, env, "io-delays", section)
	probetest.WantNone(t, probetest.Check(t, p, env))
	return ft, env, p
}

func TestIODelaysFiresOnGrowthNotLifetime(t *testing.T) {
	// A long-lived process with a big lifetime total: baseline only.
	ft, env, p := ioDelaysBaseline(t, "", probetest.Proc{PID: 812, Comm: "kworker/u8:2", Starttime: 500, BlkioTicks: 90000})
	ft.Proc(probetest.Proc{PID: 812, Comm: "kworker/u8:2", Starttime: 500, BlkioTicks: 91234})
	res := probetest.Check(t, p, env)
	probetest.WantOne(t, res, finding.StorageReady, "IODelays", "812/kworker/u8:2",
		"Process (kworker/u8:2) (PID 812) incurred 12.3 seconds of I/O delay")
}

func TestIODelaysCommWithSpacesAndParens(t *testing.T) {
	// NMA splits on whitespace, so this comm shifts every field and it
	// reads the wrong counter.
	comm := "tmux: server) (x"
	ft, env, p := ioDelaysBaseline(t, "", probetest.Proc{PID: 9, Comm: comm, Starttime: 1, BlkioTicks: 0})
	ft.Proc(probetest.Proc{PID: 9, Comm: comm, Starttime: 1, BlkioTicks: 1000})
	res := probetest.Check(t, p, env)
	probetest.WantOne(t, res, finding.StorageReady, "IODelays", "9/"+comm, "Process ("+comm+") (PID 9) incurred 10.0 seconds of I/O delay")
}

func TestIODelaysQuiet(t *testing.T) {
	ft, env, p := ioDelaysBaseline(t, "", probetest.Proc{PID: 812, Comm: "postgres", Starttime: 500, BlkioTicks: 100})
	ft.Proc(probetest.Proc{PID: 812, Comm: "postgres", Starttime: 500, BlkioTicks: 1099}) // 999 ticks
	probetest.WantNone(t, probetest.Check(t, p, env))
	// The PID was reused by a new process: its ticks are not a delta of
	// the old one's.
	ft.Proc(probetest.Proc{PID: 812, Comm: "postgres", Starttime: 9000, BlkioTicks: 5000})
	probetest.WantNone(t, probetest.Check(t, p, env))
	// A vanished process is skipped, and a stat file without the delay
	// field (old kernel) is no error.
	ft.Mkdir("/proc/813")
	ft.Write("/proc/814/stat", "814 (old) S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 77\n")
	probetest.WantNone(t, probetest.Check(t, p, env))
}

func TestIODelaysThresholdConfigurable(t *testing.T) {
	ft, env, p := ioDelaysBaseline(t, "thresholdTicks: 100", probetest.Proc{PID: 5, Comm: "dd", Starttime: 3})
	ft.Proc(probetest.Proc{PID: 5, Comm: "dd", Starttime: 3, BlkioTicks: 150})
	if len(probetest.Check(t, p, env)) != 1 {
		t.Fatal("thresholdTicks 100: 150 ticks did not fire")
	}
}

func TestIODelaysRecovers(t *testing.T) {
	ft, env, p := ioDelaysBaseline(t, "", probetest.Proc{PID: 812, Comm: "postgres", Starttime: 500, BlkioTicks: 0})
	ft.Proc(probetest.Proc{PID: 812, Comm: "postgres", Starttime: 500, BlkioTicks: 4000})
	probetest.RecoverySteps(t, p, env, "IODelays", "812/postgres", func() {})
}

// --- XFSSmallAverageClusterSize ------------------------------------------

// xfsFixture serves xfs_db output per device from outputs.
func xfsFixture(t *testing.T, outputs map[string]string) (*probe.Env, *[]string) {
	ft := probetest.NewTree(t)
	ft.Write("/proc/1/mountinfo", probetest.Testdata(t, "xfs-free-space/mountinfo"))
	env := ft.Env()
	var devs []string
	env.Run = func(ctx context.Context, name string, args ...string) ([]byte, error) {
		if name != "xfs_db" || len(args) != 4 || args[0] != "-r" || args[1] != "-c" || args[2] != "freesp -s" {
			t.Fatalf("unexpected command %s %q", name, args)
		}
		dev := strings.TrimPrefix(args[3], ft.Root)
		devs = append(devs, dev)
		out, ok := outputs[dev]
		if !ok {
			return nil, fmt.Errorf("xfs_db: exit status 1: %s: No such device", dev)
		}
		return []byte(probetest.Testdata(t, "xfs-free-space/"+out)), nil
	}
	return env, &devs
}

const xfsMessage = "The XFS Average Cluster size is small, which may prevent new files from being created due to free space fragmentation"

func TestXFSSmallAverageFires(t *testing.T) {
	env, devs := xfsFixture(t, map[string]string{"/dev/nvme0n1p1": "freesp-healthy.txt", "/dev/nvme1n1": "freesp-fragmented.txt"})
	res := probetest.Check(t, probetest.Build(t, env, "xfs-free-space", ""), env)
	probetest.WantOne(t, res, finding.StorageReady, "XFSSmallAverageClusterSize", "/dev/nvme1n1",
		xfsMessage+" (/dev/nvme1n1 on /var/lib/containerd: average free extent 12.4 blocks)")
	// Each XFS device once (nvme1n1 is mounted twice); ext4 never.
	if !slices.Equal(*devs, []string{"/dev/nvme0n1p1", "/dev/nvme1n1"}) {
		t.Fatalf("inspected %q", *devs)
	}
}

func TestXFSQuiet(t *testing.T) {
	env, _ := xfsFixture(t, map[string]string{"/dev/nvme0n1p1": "freesp-healthy.txt", "/dev/nvme1n1": "freesp-healthy.txt"})
	probetest.WantNone(t, probetest.Check(t, probetest.Build(t, env, "xfs-free-space", ""), env))
	// A host without XFS runs no command at all.
	ft := probetest.NewTree(t)
	ft.Write("/proc/1/mountinfo", "70 22 259:7 / / rw - ext4 /dev/vda rw\n")
	env2 := ft.Env()
	probetest.WantNone(t, probetest.Check(t, probetest.Build(t, env2, "xfs-free-space", ""), env2))
}

func TestXFSFallsBackToSelfMountinfo(t *testing.T) {
	env, _ := xfsFixture(t, map[string]string{"/dev/nvme0n1p1": "freesp-fragmented.txt", "/dev/nvme1n1": "freesp-healthy.txt"})
	ft := probetest.At(t, env.Root)
	ft.Write("/proc/self/mountinfo", probetest.Testdata(t, "xfs-free-space/mountinfo"))
	ft.Remove("/proc/1")
	res := probetest.Check(t, probetest.Build(t, env, "xfs-free-space", ""), env)
	if len(res) != 1 || res[0].Key != "/dev/nvme0n1p1" {
		t.Fatalf("got %+v", res)
	}
}

func TestXFSFailureClearsNothing(t *testing.T) {
	outputs := map[string]string{"/dev/nvme0n1p1": "freesp-healthy.txt", "/dev/nvme1n1": "freesp-fragmented.txt"}
	env, _ := xfsFixture(t, outputs)
	p := probetest.Build(t, env, "xfs-free-space", "")
	probetest.Check(t, p, env)
	// xfs_db fails on the fragmented device: its finding is carried, not
	// dropped (which would count as a pass).
	delete(outputs, "/dev/nvme1n1")
	res := probetest.Check(t, p, env)
	if len(res) != 1 || res[0].Key != "/dev/nvme1n1" {
		t.Fatalf("got %+v", res)
	}
	// Every device failing is a failed check.
	delete(outputs, "/dev/nvme0n1p1")
	if _, err := p.Check(t.Context(), env); err == nil {
		t.Fatal("all devices failing: want an error")
	}
}

func TestXFSRecovers(t *testing.T) {
	outputs := map[string]string{"/dev/nvme0n1p1": "freesp-fragmented.txt", "/dev/nvme1n1": "freesp-healthy.txt"}
	env, _ := xfsFixture(t, outputs)
	probetest.RecoverySteps(t, probetest.Build(t, env, "xfs-free-space", ""), env, "XFSSmallAverageClusterSize", "/dev/nvme0n1p1", func() {
		outputs["/dev/nvme0n1p1"] = "freesp-healthy.txt" // after xfs_fsr
	})
}

// --- EBS performance ------------------------------------------------------

// fakeNVMe serves identify data and log pages per device path.
type fakeNVMe struct {
	identify map[string][]byte
	pages    map[string][]byte
	fail     map[string]error
}

func (f *fakeNVMe) IdentifyController(_ context.Context, dev string) ([]byte, error) {
	if err := f.fail[filepath.Base(dev)]; err != nil {
		return nil, err
	}
	b, ok := f.identify[filepath.Base(dev)]
	if !ok {
		return nil, errors.New("inappropriate ioctl for device")
	}
	return b, nil
}

func (f *fakeNVMe) LogPage(_ context.Context, dev string, lid uint8, size int) ([]byte, error) {
	if lid != 0xD0 || size != 4096 {
		return nil, fmt.Errorf("unexpected log page %#x size %d", lid, size)
	}
	return f.pages[filepath.Base(dev)], nil
}

// identifyData lays out Identify Controller data as an NVMe controller
// returns it: VID, serial and model space-padded at their offsets.
func identifyData(vid uint16, serial, model string) []byte {
	b := make([]byte, 4096)
	binary.LittleEndian.PutUint16(b[0:], vid)
	binary.LittleEndian.PutUint16(b[2:], vid)
	copy(b[4:24], fmt.Sprintf("%-20s", serial))
	copy(b[24:64], fmt.Sprintf("%-40s", model))
	copy(b[64:72], "1.0     ")
	return b
}

// ebsPage lays out the EBS statistics log page with the four exceeded
// counters (µs) and plausible values in the other fields.
func ebsPage(volIOPS, volTP, instIOPS, instTP uint64) []byte {
	b := make([]byte, 4096)
	binary.LittleEndian.PutUint32(b[0:], 0x3C23B510)
	for i, v := range []uint64{123456, 654321, 1 << 30, 1 << 31, 9e9, 8e9, volIOPS, volTP, instIOPS, instTP, 3} {
		binary.LittleEndian.PutUint64(b[8+8*i:], v)
	}
	binary.LittleEndian.PutUint64(b[512:], 2) // read histogram: bin count
	return b
}

func ebsFixture(t *testing.T) (*probetest.Tree, *probe.Env, *fakeNVMe, *ebsPerformanceProbe, *time.Time) {
	ft := probetest.NewTree(t)
	for _, d := range []string{"nvme0", "nvme0n1", "nvme0n1p1", "nvme1n1", "nvme2n1", "nvme3n1"} {
		ft.Write("/dev/"+d, "")
	}
	fake := &fakeNVMe{
		identify: map[string][]byte{
			"nvme0n1": identifyData(0x1D0F, "vol0a1b2c3d4e5f60718", "Amazon Elastic Block Store"),
			"nvme1n1": identifyData(0x1D0F, "vol0fedcba987654321f", "Amazon Elastic Block Store"),
			// Instance store: Amazon's VID, another model.
			"nvme2n1": identifyData(0x1D0F, "AWS1234567890ABCDEF", "Amazon EC2 NVMe Instance Storage"),
			// A second namespace path of volume 1 (de-duplicated).
			"nvme3n1": identifyData(0x1D0F, "vol0fedcba987654321f", "Amazon Elastic Block Store"),
		},
		pages: map[string][]byte{"nvme0n1": ebsPage(0, 0, 0, 0), "nvme1n1": ebsPage(0, 0, 0, 0), "nvme3n1": ebsPage(0, 0, 0, 0)},
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	env := ft.Env()
	env.Now = func() time.Time { return now }
	p := probetest.Build(t, env, "ebs-performance", "").(*ebsPerformanceProbe)
	p.admin = fake
	return ft, env, fake, p, &now
}

func TestEBSExceededFires(t *testing.T) {
	_, env, fake, p, now := ebsFixture(t)
	// Large lifetime counters at the first read: a baseline, not news.
	fake.pages["nvme0n1"] = ebsPage(900e6, 800e6, 700e6, 600e6)
	probetest.WantNone(t, probetest.Check(t, p, env))
	*now = now.Add(10 * time.Minute)
	// 50 s allowed per 10 minutes: one µs over fires, exactly 50 s does not.
	fake.pages["nvme0n1"] = ebsPage(900e6+50e6+1, 800e6+50e6, 700e6+120e6, 600e6)
	res := probetest.Check(t, p, env)
	want := []probe.Result{
		{Condition: finding.StorageReady, Reason: "EBSVolumeIOPSExceeded", Severity: finding.Warning, Key: "vol-0a1b2c3d4e5f60718",
			Message: "Volume vol-0a1b2c3d4e5f60718 (/dev/nvme0n1) reported exceeded configured IOPS for 50.000001s"},
		{Condition: finding.StorageReady, Reason: "EBSInstanceIOPSExceeded", Severity: finding.Warning, Key: "vol-0a1b2c3d4e5f60718",
			Message: "Volume vol-0a1b2c3d4e5f60718 (/dev/nvme0n1) reported exceeded instance IOPS for 2m0s"},
	}
	if !slices.Equal(res, want) {
		t.Fatalf("got %+v\nwant %+v", res, want)
	}
}

func TestEBSThroughputReasons(t *testing.T) {
	_, env, fake, p, now := ebsFixture(t)
	probetest.Check(t, p, env)
	*now = now.Add(10 * time.Minute)
	fake.pages["nvme1n1"] = ebsPage(0, 60e6, 0, 70e6)
	res := probetest.Check(t, p, env)
	if len(res) != 2 || res[0].Reason != "EBSVolumeThroughputExceeded" || res[1].Reason != "EBSInstanceThroughputExceeded" ||
		res[0].Message != "Volume vol-0fedcba987654321f (/dev/nvme1n1) reported exceeded configured throughput for 1m0s" ||
		res[1].Message != "Volume vol-0fedcba987654321f (/dev/nvme1n1) reported exceeded instance throughput for 1m10s" {
		t.Fatalf("got %+v", res)
	}
}

func TestEBSQuiet(t *testing.T) {
	_, env, fake, p, now := ebsFixture(t)
	probetest.Check(t, p, env)
	*now = now.Add(10 * time.Minute)
	fake.pages["nvme0n1"] = ebsPage(50e6, 50e6, 50e6, 50e6) // exactly the allowance
	probetest.WantNone(t, probetest.Check(t, p, env))
	// A counter that went down (volume re-attached) re-baselines instead
	// of wrapping to a huge delta.
	*now = now.Add(10 * time.Minute)
	fake.pages["nvme0n1"] = ebsPage(1, 1, 1, 1)
	probetest.WantNone(t, probetest.Check(t, p, env))
	// A longer gap between checks (one failed) earns a larger allowance.
	*now = now.Add(30 * time.Minute)
	fake.pages["nvme0n1"] = ebsPage(1+140e6, 1, 1, 1)
	probetest.WantNone(t, probetest.Check(t, p, env))
}

func TestEBSRejectsOtherPages(t *testing.T) {
	if _, err := parseEBSLogPage(make([]byte, 4096)); err == nil {
		t.Fatal("zero magic accepted")
	}
	if _, err := parseEBSLogPage(ebsPage(1, 2, 3, 4)[:80]); err == nil {
		t.Fatal("short page accepted")
	}
	c, err := parseEBSLogPage(ebsPage(1, 2, 3, 4))
	if err != nil || c != [4]uint64{1, 2, 3, 4} {
		t.Fatalf("got %v, %v", c, err)
	}
	_, env, fake, p, _ := ebsFixture(t)
	fake.pages["nvme0n1"] = make([]byte, 4096)
	fake.fail = map[string]error{"nvme1n1": errors.New("permission denied"), "nvme3n1": errors.New("permission denied")}
	if _, err := p.Check(t.Context(), env); err == nil {
		t.Fatal("no device readable: want an error")
	}
}

func TestEBSReadFailureClearsNothing(t *testing.T) {
	_, env, fake, p, now := ebsFixture(t)
	probetest.Check(t, p, env)
	*now = now.Add(10 * time.Minute)
	fake.pages["nvme0n1"] = ebsPage(99e6, 0, 0, 0)
	if len(probetest.Check(t, p, env)) != 1 {
		t.Fatal("did not fire")
	}
	*now = now.Add(10 * time.Minute)
	fake.fail = map[string]error{"nvme0n1": errors.New("device busy")}
	res := probetest.Check(t, p, env)
	if len(res) != 1 || res[0].Reason != "EBSVolumeIOPSExceeded" {
		t.Fatalf("unreadable volume: want its finding carried, got %+v", res)
	}
}

func TestEBSRecovers(t *testing.T) {
	for i, c := range ebsCounters {
		t.Run(c.reason.Name, func(t *testing.T) {
			_, env, fake, p, now := ebsFixture(t)
			probetest.Check(t, p, env)
			*now = now.Add(10 * time.Minute)
			var counters [4]uint64
			counters[i] = 400e6
			fake.pages["nvme1n1"] = ebsPage(counters[0], counters[1], counters[2], counters[3])
			probetest.RecoverySteps(t, p, env, c.reason.Name, "vol-0fedcba987654321f", func() {
				// The counter stops growing; the clock moves on each check.
				env.Now = func() time.Time { *now = now.Add(10 * time.Minute); return *now }
			})
		})
	}
}

func TestEBSVolumeID(t *testing.T) {
	for in, want := range map[string]string{"vol0a1b2c3d4e5f60718": "vol-0a1b2c3d4e5f60718", "vol-0abc": "vol-0abc", "AWS123": "AWS123"} {
		if got := ebsVolumeID(in); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}
