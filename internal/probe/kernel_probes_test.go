package probe

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// --- ApproachingKernelPidMax -------------------------------------------

func pidFixture(t *testing.T, tasks int) *fxTree {
	ft := newFxTree(t)
	ft.write("/proc/sys/kernel/pid_max", "4194304\n")
	ft.write("/proc/sys/kernel/threads-max", "10000\n")
	ft.write("/proc/loadavg", fmt.Sprintf("0.52 0.58 0.59 3/%d 12345\n", tasks))
	return ft
}

func TestPidMaxFires(t *testing.T) {
	// 7,500 threads against threads-max 10,000: NMA (processes against
	// the larger pid_max) would see 0.2% here.
	ft := pidFixture(t, 7500)
	ft.proc(fxProc{pid: 1, comm: "systemd"})
	env := ft.env()
	res := mustCheck(t, buildProbe(t, env, "pid-max", ""), env)
	wantOne(t, res, finding.KernelReady, "ApproachingKernelPidMax", "", "Approaching max number of PIDs. 7500 of 10000 total, 75.0%")
}

func TestPidMaxQuiet(t *testing.T) {
	ft := pidFixture(t, 6999)
	env := ft.env()
	wantNone(t, mustCheck(t, buildProbe(t, env, "pid-max", ""), env))
}

func TestPidMaxThresholdConfigurable(t *testing.T) {
	ft := pidFixture(t, 6000)
	env := ft.env()
	res := mustCheck(t, buildProbe(t, env, "pid-max", "threshold: 0.5"), env)
	if len(res) != 1 {
		t.Fatalf("threshold 0.5: want a result at 60%%, got %+v", res)
	}
}

func TestPidMaxFallsBackToProcessCount(t *testing.T) {
	ft := pidFixture(t, 0)
	ft.remove("/proc/loadavg")
	ft.write("/proc/sys/kernel/threads-max", "4\n")
	for pid := 1; pid <= 3; pid++ {
		ft.proc(fxProc{pid: pid, comm: "p"})
	}
	env := ft.env()
	res := mustCheck(t, buildProbe(t, env, "pid-max", ""), env)
	wantOne(t, res, finding.KernelReady, "ApproachingKernelPidMax", "", "Approaching max number of PIDs. 3 of 4 total, 75.0%")
}

func TestPidMaxRecovers(t *testing.T) {
	ft := pidFixture(t, 9000)
	env := ft.env()
	recoverySteps(t, buildProbe(t, env, "pid-max", ""), env, "ApproachingKernelPidMax", "", func() {
		ft.write("/proc/loadavg", "0.1 0.1 0.1 1/300 1\n")
	})
}

// --- ApproachingMaxOpenFiles -------------------------------------------

func TestOpenFilesFires(t *testing.T) {
	ft := newFxTree(t)
	ft.write("/proc/sys/fs/file-nr", "7000\t0\t10000\n")
	env := ft.env()
	res := mustCheck(t, buildProbe(t, env, "open-files", ""), env)
	wantOne(t, res, finding.KernelReady, "ApproachingMaxOpenFiles", "",
		"Approaching Exhaustion of max open file descriptors. 7000 of 10000 total, 70.0%")
}

func TestOpenFilesQuiet(t *testing.T) {
	ft := newFxTree(t)
	// systemd sets fs.file-max to LONG_MAX: must not overflow or fire.
	ft.write("/proc/sys/fs/file-nr", "2144\t0\t9223372036854775807\n")
	env := ft.env()
	wantNone(t, mustCheck(t, buildProbe(t, env, "open-files", ""), env))
}

func TestOpenFilesRecovers(t *testing.T) {
	ft := newFxTree(t)
	ft.write("/proc/sys/fs/file-nr", "9000\t0\t10000\n")
	env := ft.env()
	recoverySteps(t, buildProbe(t, env, "open-files", ""), env, "ApproachingMaxOpenFiles", "", func() {
		ft.write("/proc/sys/fs/file-nr", "1000\t0\t10000\n")
	})
}

// --- ExcessiveZombieProcesses ------------------------------------------

func zombieFixture(t *testing.T, zombies int) *fxTree {
	ft := newFxTree(t)
	ft.proc(fxProc{pid: 1, comm: "systemd"})
	setZombies(ft, zombies)
	return ft
}

// setZombies makes exactly n defunct children of PID 1.
func setZombies(ft *fxTree, n int) {
	for pid := 100; pid < 200; pid++ {
		ft.remove(fmt.Sprintf("/proc/%d", pid))
	}
	for i := 0; i < n; i++ {
		// A comm with spaces and parentheses must not shift the state.
		ft.proc(fxProc{pid: 100 + i, comm: "sh) Z (x", state: 'Z'})
	}
}

func TestZombiesFireOnlyWhenSustained(t *testing.T) {
	ft := zombieFixture(t, 20)
	env := ft.env()
	p := buildProbe(t, env, "zombies", "")
	for i := 1; i <= 4; i++ {
		if res := mustCheck(t, p, env); len(res) != 0 {
			t.Fatalf("check %d of a sustained pile-up fired early: %+v", i, res)
		}
	}
	res := mustCheck(t, p, env)
	wantOne(t, res, finding.KernelReady, "ExcessiveZombieProcesses", "", "Detected 20 zombie processes still running")
	// Still there: it keeps being reported, so it stays active.
	if len(mustCheck(t, p, env)) != 1 {
		t.Fatal("sustained zombies stopped being reported")
	}
}

func TestZombiesQuiet(t *testing.T) {
	ft := zombieFixture(t, 19)
	env := ft.env()
	p := buildProbe(t, env, "zombies", "")
	for i := 0; i < 10; i++ {
		wantNone(t, mustCheck(t, p, env))
	}
}

func TestZombiesStreakResets(t *testing.T) {
	// NMA's counter never decays: four bad polls, a good one, then one
	// more bad poll is its fifth. Here the streak starts over.
	ft := zombieFixture(t, 25)
	env := ft.env()
	p := buildProbe(t, env, "zombies", "consecutive: 3")
	mustCheck(t, p, env)
	mustCheck(t, p, env)
	setZombies(ft, 2)
	wantNone(t, mustCheck(t, p, env))
	setZombies(ft, 25)
	wantNone(t, mustCheck(t, p, env))
	wantNone(t, mustCheck(t, p, env))
	if len(mustCheck(t, p, env)) != 1 {
		t.Fatal("third consecutive bad check did not fire")
	}
}

func TestZombiesRecover(t *testing.T) {
	ft := zombieFixture(t, 30)
	env := ft.env()
	p := buildProbe(t, env, "zombies", "consecutive: 1")
	recoverySteps(t, p, env, "ExcessiveZombieProcesses", "", func() { setZombies(ft, 0) })
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
	ft := newFxTree(t)
	ft.proc(fxProc{pid: 1, comm: "systemd", environ: []string{"HOME=/"}})
	ft.proc(fxProc{pid: 4242, comm: "java", environ: bigEnv(1001)})
	// Exactly at the threshold does not fire (NMA: > 1000).
	ft.proc(fxProc{pid: 4243, comm: "python", environ: bigEnv(1000)})
	env := ft.env()
	res := mustCheck(t, buildProbe(t, env, "large-environment", ""), env)
	wantOne(t, res, finding.KernelReady, "LargeEnvironment", "4242/java",
		"PID 4242 has a higher than normal environment variable count at 1001")
}

func TestLargeEnvironmentQuietAndSkipsVanished(t *testing.T) {
	ft := newFxTree(t)
	ft.proc(fxProc{pid: 1, comm: "systemd", environ: []string{"A=1", "", "B=2"}})
	// A PID directory whose files are gone (the process exited while the
	// probe was listing) is skipped, not an error.
	ft.mkdir("/proc/77")
	env := ft.env()
	wantNone(t, mustCheck(t, buildProbe(t, env, "large-environment", ""), env))
}

func TestLargeEnvironmentIgnoresEmptyEntries(t *testing.T) {
	ft := newFxTree(t)
	vars := append(bigEnv(1000), "", "", "")
	ft.proc(fxProc{pid: 9, comm: "app", environ: vars})
	env := ft.env()
	wantNone(t, mustCheck(t, buildProbe(t, env, "large-environment", ""), env))
}

func TestLargeEnvironmentRecovers(t *testing.T) {
	ft := newFxTree(t)
	ft.proc(fxProc{pid: 4242, comm: "java", environ: bigEnv(5000)})
	env := ft.env()
	recoverySteps(t, buildProbe(t, env, "large-environment", ""), env, "LargeEnvironment", "4242/java", func() {
		ft.remove("/proc/4242") // the process exited
	})
}

// --- ZramHighUsage -------------------------------------------------------

func zramFixture(t *testing.T, orig, disksize uint64) *fxTree {
	ft := newFxTree(t)
	setZram(ft, "zram0", orig, disksize)
	return ft
}

func setZram(ft *fxTree, dev string, orig, disksize uint64) {
	ft.write("/sys/block/"+dev+"/mm_stat", fmt.Sprintf("%8d %8d %8d        0 %8d        0        0        0        0\n", orig, orig/3, orig/3, orig/3))
	ft.write("/sys/block/"+dev+"/disksize", fmt.Sprintf("%d\n", disksize))
}

func TestZramFires(t *testing.T) {
	ft := zramFixture(t, 2<<30, 8<<30)
	setZram(ft, "zram1", 0, 8<<30) // unused device: skipped
	setZram(ft, "zram2", 100, 0)   // unconfigured: skipped
	env := ft.env()
	res := mustCheck(t, buildProbe(t, env, "zram", ""), env)
	wantOne(t, res, finding.KernelReady, "ZramHighUsage", "zram0", "ZRAM device zram0 at 25.0% capacity")
}

func TestZramQuiet(t *testing.T) {
	ft := zramFixture(t, 800<<20, 8<<30) // 9.8%
	env := ft.env()
	wantNone(t, mustCheck(t, buildProbe(t, env, "zram", ""), env))
	// No zram at all is a pass, not an error.
	empty := newFxTree(t)
	wantNone(t, mustCheck(t, buildProbe(t, empty.env(), "zram", ""), empty.env()))
}

func TestZramRecovers(t *testing.T) {
	ft := zramFixture(t, 4<<30, 8<<30)
	env := ft.env()
	recoverySteps(t, buildProbe(t, env, "zram", ""), env, "ZramHighUsage", "zram0", func() {
		setZram(ft, "zram0", 100<<20, 8<<30)
	})
}

// --- shared ---------------------------------------------------------------

func TestParseProcStat(t *testing.T) {
	fx := fxProc{pid: 7, comm: "a) b (c", state: 'D', starttime: 12345, blkioTicks: 678}
	st, err := parseProcStat([]byte(fx.statLine()))
	if err != nil {
		t.Fatal(err)
	}
	if st.Comm != "a) b (c" || st.State != 'D' || st.Starttime != 12345 || st.BlkioTicks != 678 {
		t.Fatalf("got %+v", st)
	}
	badStart := strings.Fields(fx.statLine())
	badStart[22-1+2] = "x" // "a)", "b", "(c)" split the comm in three
	for _, bad := range []string{"", "7 (x", "7 (x)", "7 (x) Sleeping", strings.Join(badStart, " ")} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	// An old kernel's shorter line (no delay accounting field) is not an
	// error: the ticks are simply unknown (0).
	short := strings.Join(strings.Fields(fx.statLine())[:30], " ")
	if st, err := parseProcStat([]byte(short)); err != nil || st.BlkioTicks != 0 || st.Starttime != 12345 {
		t.Fatalf("short line: %+v, %v", st, err)
	}
}

func TestConfigValidation(t *testing.T) {
	env := newFxTree(t).env()
	for _, c := range []struct{ probe, section, want string }{
		{"pid-max", "threshold: 1.5", "threshold"},
		{"open-files", "period: 10ms", "period"},
		{"zombies", "consecutive: 0", "consecutive"},
		{"zram", "typo: 1", "typo"},
		{"io-delays", "thresholdTicks: 0", "thresholdTicks"},
		{"ebs-performance", "exceededPerMinute: 2m", "exceededPerMinute"},
		{"containerd-deprecations", "command: ''", "command"},
	} {
		_, err := factories[c.probe](env, yamlNode(t, c.section))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q: want an error about %s, got %v", c.probe, c.section, c.want, err)
		}
	}
	// enabled: false builds nothing.
	for _, name := range []string{"pid-max", "open-files", "zombies", "large-environment", "clock-sync", "zram",
		"repeated-restart", "containerd-deprecations", "io-delays", "xfs-free-space", "ebs-performance"} {
		p, err := factories[name](env, yamlNode(t, "enabled: false"))
		if err != nil || p != nil {
			t.Errorf("%s enabled: false: got %v, %v", name, p, err)
		}
	}
}
