package kernel

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// --- ApproachingKernelPidMax -------------------------------------------

func pidFixture(t *testing.T, tasks int) *probetest.Tree {
	ft := probetest.NewTree(t)
	ft.Write("/proc/sys/kernel/pid_max", "4194304\n")
	ft.Write("/proc/sys/kernel/threads-max", "10000\n")
	ft.Write("/proc/loadavg", fmt.Sprintf("0.52 0.58 0.59 3/%d 12345\n", tasks))
	return ft
}

func TestPidMaxFires(t *testing.T) {
	// 7,500 threads against threads-max 10,000: NMA (processes against
	// the larger pid_max) would see 0.2% here.
	ft := pidFixture(t, 7500)
	ft.Proc(probetest.Proc{PID: 1, Comm: "systemd"})
	env := ft.Env()
	res := probetest.Check(t, probetest.Build(t, env, "pid-max", ""), env)
	probetest.WantOne(t, res, finding.KernelReady, "ApproachingKernelPidMax", "", "Approaching max number of PIDs. 7500 of 10000 total, 75.0%")
}

func TestPidMaxQuiet(t *testing.T) {
	ft := pidFixture(t, 6999)
	env := ft.Env()
	probetest.WantNone(t, probetest.Check(t, probetest.Build(t, env, "pid-max", ""), env))
}

func TestPidMaxThresholdConfigurable(t *testing.T) {
	ft := pidFixture(t, 6000)
	env := ft.Env()
	res := probetest.Check(t, probetest.Build(t, env, "pid-max", "threshold: 0.5"), env)
	if len(res) != 1 {
		t.Fatalf("threshold 0.5: want a result at 60%%, got %+v", res)
	}
}

func TestPidMaxFallsBackToProcessCount(t *testing.T) {
	ft := pidFixture(t, 0)
	ft.Remove("/proc/loadavg")
	ft.Write("/proc/sys/kernel/threads-max", "4\n")
	for pid := 1; pid <= 3; pid++ {
		ft.Proc(probetest.Proc{PID: pid, Comm: "p"})
	}
	env := ft.Env()
	res := probetest.Check(t, probetest.Build(t, env, "pid-max", ""), env)
	probetest.WantOne(t, res, finding.KernelReady, "ApproachingKernelPidMax", "", "Approaching max number of PIDs. 3 of 4 total, 75.0%")
}

func TestPidMaxRecovers(t *testing.T) {
	ft := pidFixture(t, 9000)
	env := ft.Env()
	probetest.RecoverySteps(t, probetest.Build(t, env, "pid-max", ""), env, "ApproachingKernelPidMax", "", func() {
		ft.Write("/proc/loadavg", "0.1 0.1 0.1 1/300 1\n")
	})
}

// --- ApproachingMaxOpenFiles -------------------------------------------

func TestOpenFilesFires(t *testing.T) {
	ft := probetest.NewTree(t)
	ft.Write("/proc/sys/fs/file-nr", "7000\t0\t10000\n")
	env := ft.Env()
	res := probetest.Check(t, probetest.Build(t, env, "open-files", ""), env)
	probetest.WantOne(t, res, finding.KernelReady, "ApproachingMaxOpenFiles", "",
		"Approaching Exhaustion of max open file descriptors. 7000 of 10000 total, 70.0%")
}

func TestOpenFilesQuiet(t *testing.T) {
	ft := probetest.NewTree(t)
	// systemd sets fs.file-max to LONG_MAX: must not overflow or fire.
	ft.Write("/proc/sys/fs/file-nr", "2144\t0\t9223372036854775807\n")
	env := ft.Env()
	probetest.WantNone(t, probetest.Check(t, probetest.Build(t, env, "open-files", ""), env))
}

func TestOpenFilesRecovers(t *testing.T) {
	ft := probetest.NewTree(t)
	ft.Write("/proc/sys/fs/file-nr", "9000\t0\t10000\n")
	env := ft.Env()
	probetest.RecoverySteps(t, probetest.Build(t, env, "open-files", ""), env, "ApproachingMaxOpenFiles", "", func() {
		ft.Write("/proc/sys/fs/file-nr", "1000\t0\t10000\n")
	})
}

// --- ExcessiveZombieProcesses ------------------------------------------

// zombieFixture is the zombies probe, built from section, on a host with
// that many zombies.
func zombieFixture(t *testing.T, zombies int, section string) (*probetest.Tree, *probe.Env, probe.Probe) {
	ft := probetest.NewTree(t)
	ft.Proc(probetest.Proc{PID: 1, Comm: "systemd"})
	setZombies(ft, zombies)
	env := ft.Env()
	return ft, env, probetest.Build(t, env, "zombies", section)
}

// setZombies makes exactly n defunct children of PID 1.
func setZombies(ft *probetest.Tree, n int) {
	for pid := 100; pid < 200; pid++ {
		ft.Remove(fmt.Sprintf("/proc/%d", pid))
	}
	for i := 0; i < n; i++ {
		// A comm with spaces and parentheses must not shift the state.
		ft.Proc(probetest.Proc{PID: 100 + i, Comm: "sh) Z (x", State: 'Z'})
	}
}

func TestZombiesFireOnlyWhenSustained(t *testing.T) {
	_, env, p := zombieFixture(t, 20, "")
	// Four checks of a sustained pile-up are one too few to report it.
	probetest.WantQuiet(t, p, env, 4)
	res := probetest.Check(t, p, env)
	probetest.WantOne(t, res, finding.KernelReady, "ExcessiveZombieProcesses", "", "Detected 20 zombie processes still running")
	// Still there: it keeps being reported, so it stays active.
	if len(probetest.Check(t, p, env)) != 1 {
		t.Fatal("sustained zombies stopped being reported")
	}
}

func TestZombiesQuiet(t *testing.T) {
	_, env, p := zombieFixture(t, 19, "")
	probetest.WantQuiet(t, p, env, 10)
}

func TestZombiesStreakResets(t *testing.T) {
	// NMA's counter never decays: four bad polls, a good one, then one
	// more bad poll is its fifth. Here the streak starts over.
	ft, env, p := zombieFixture(t, 25, "consecutive: 3")
	probetest.Check(t, p, env)
	probetest.Check(t, p, env)
	setZombies(ft, 2)
	probetest.WantNone(t, probetest.Check(t, p, env))
	setZombies(ft, 25)
	probetest.WantNone(t, probetest.Check(t, p, env))
	probetest.WantNone(t, probetest.Check(t, p, env))
	if len(probetest.Check(t, p, env)) != 1 {
		t.Fatal("third consecutive bad check did not fire")
	}
}

func TestZombiesRecover(t *testing.T) {
	ft, env, p := zombieFixture(t, 30, "consecutive: 1")
	probetest.RecoverySteps(t, p, env, "ExcessiveZombieProcesses", "", func() { setZombies(ft, 0) })
}

// --- LargeEnvironment ----------------------------------------------------

func bigEnv(n int) []string {
	env := make([]string, n)
	for i := range env {
		env[i] = fmt.Sprintf("SVC_%d_SERVICE_HOST=10.0.0.1", i)
	}
	return env
}

func TestLargeEnvironmentFiresPerProcess(t *testing.T) {
	ft := probetest.NewTree(t)
	ft.Proc(probetest.Proc{PID: 1, Comm: "systemd", Environ: []string{"HOME=/"}})
	ft.Proc(probetest.Proc{PID: 4242, Comm: "java", Environ: bigEnv(1001)})
	// Exactly at the threshold does not fire (NMA: > 1000).
	ft.Proc(probetest.Proc{PID: 4243, Comm: "python", Environ: bigEnv(1000)})
	env := ft.Env()
	res := probetest.Check(t, probetest.Build(t, env, "large-environment", ""), env)
	probetest.WantOne(t, res, finding.KernelReady, "LargeEnvironment", "4242/java",
		"PID 4242 has a higher than normal environment variable count at 1001")
}

func TestLargeEnvironmentQuietAndSkipsVanished(t *testing.T) {
	ft := probetest.NewTree(t)
	ft.Proc(probetest.Proc{PID: 1, Comm: "systemd", Environ: []string{"A=1", "", "B=2"}})
	// A PID directory whose files are gone (the process exited while the
	// probe was listing) is skipped, not an error.
	ft.Mkdir("/proc/77")
	env := ft.Env()
	probetest.WantNone(t, probetest.Check(t, probetest.Build(t, env, "large-environment", ""), env))
}

func TestLargeEnvironmentIgnoresEmptyEntries(t *testing.T) {
	ft := probetest.NewTree(t)
	vars := append(bigEnv(1000), "", "", "")
	ft.Proc(probetest.Proc{PID: 9, Comm: "app", Environ: vars})
	env := ft.Env()
	probetest.WantNone(t, probetest.Check(t, probetest.Build(t, env, "large-environment", ""), env))
}

func TestLargeEnvironmentRecovers(t *testing.T) {
	ft := probetest.NewTree(t)
	ft.Proc(probetest.Proc{PID: 4242, Comm: "java", Environ: bigEnv(5000)})
	env := ft.Env()
	probetest.RecoverySteps(t, probetest.Build(t, env, "large-environment", ""), env, "LargeEnvironment", "4242/java", func() {
		ft.Remove("/proc/4242") // the process exited
	})
}

// --- ZramHighUsage -------------------------------------------------------

func zramFixture(t *testing.T, orig, disksize uint64) *probetest.Tree {
	ft := probetest.NewTree(t)
	setZram(ft, "zram0", orig, disksize)
	return ft
}

func setZram(ft *probetest.Tree, dev string, orig, disksize uint64) {
	ft.Write("/sys/block/"+dev+"/mm_stat", fmt.Sprintf("%8d %8d %8d        0 %8d        0        0        0        0\n", orig, orig/3, orig/3, orig/3))
	ft.Write("/sys/block/"+dev+"/disksize", fmt.Sprintf("%d\n", disksize))
}

func TestZramFires(t *testing.T) {
	ft := zramFixture(t, 2<<30, 8<<30)
	setZram(ft, "zram1", 0, 8<<30) // unused device: skipped
	setZram(ft, "zram2", 100, 0)   // unconfigured: skipped
	env := ft.Env()
	res := probetest.Check(t, probetest.Build(t, env, "zram", ""), env)
	probetest.WantOne(t, res, finding.KernelReady, "ZramHighUsage", "zram0", "ZRAM device zram0 at 25.0% capacity")
}

func TestZramQuiet(t *testing.T) {
	ft := zramFixture(t, 800<<20, 8<<30) // 9.8%
	env := ft.Env()
	probetest.WantNone(t, probetest.Check(t, probetest.Build(t, env, "zram", ""), env))
	// No zram at all is a pass, not an error.
	empty := probetest.NewTree(t)
	probetest.WantNone(t, probetest.Check(t, probetest.Build(t, empty.Env(), "zram", ""), empty.Env()))
}

func TestZramRecovers(t *testing.T) {
	ft := zramFixture(t, 4<<30, 8<<30)
	env := ft.Env()
	probetest.RecoverySteps(t, probetest.Build(t, env, "zram", ""), env, "ZramHighUsage", "zram0", func() {
		setZram(ft, "zram0", 100<<20, 8<<30)
	})
}

// --- shared ---------------------------------------------------------------

func TestParseProcStat(t *testing.T) {
	fx := probetest.Proc{PID: 7, Comm: "a) b (c", State: 'D', Starttime: 12345, BlkioTicks: 678}
	st, err := probe.ParseProcStat([]byte(fx.StatLine()))
	if err != nil {
		t.Fatal(err)
	}
	if st.Comm != "a) b (c" || st.State != 'D' || st.Starttime != 12345 || st.BlkioTicks != 678 {
		t.Fatalf("got %+v", st)
	}
	badStart := strings.Fields(fx.StatLine())
	badStart[22-1+2] = "x" // "a)", "b", "(c)" split the comm in three
	for _, bad := range []string{"", "7 (x", "7 (x)", "7 (x) Sleeping", strings.Join(badStart, " ")} {
		if _, err := probe.ParseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	// An old kernel's shorter line (no delay accounting field) is not an
	// error: the ticks are simply unknown (0).
	short := strings.Join(strings.Fields(fx.StatLine())[:30], " ")
	if st, err := probe.ParseProcStat([]byte(short)); err != nil || st.BlkioTicks != 0 || st.Starttime != 12345 {
		t.Fatalf("short line: %+v, %v", st, err)
	}
}
