package all_test

// REAL-HOST TESTS: these run every registered probe — kernel, runtime,
// storage and networking — against the /proc, /sys, /dev and /run of the
// machine running the tests, with real commands. They check that a full
// pass completes and reports nothing Fatal on a healthy machine; what a
// host lacks (no D-Bus, no containerd, no NVMe, a missing tool) must make
// a probe unavailable, not fail the pass.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"

	"github.com/nodehealthd/nodehealthd/internal/finding"
)

func realHostEnv(tb testing.TB) *probe.Env {
	tb.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		tb.Skip("no procfs on this host")
	}
	return &probe.Env{Root: "/", Log: probetest.Discard(), Now: time.Now, Tags: probe.HostTags("/", nil), Run: probe.ExecRunner}
}

// hostLacks reports whether err only says that something the probe needs
// is not on this machine (a tool, a device, a privilege).
func hostLacks(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) ||
		errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EPERM) ||
		errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EPROTONOSUPPORT) ||
		errors.Is(err, syscall.EAFNOSUPPORT)
}

func TestFullPassOnRealHost(t *testing.T) {
	env := realHostEnv(t)
	probes, err := probe.Build(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(probes) == 0 {
		t.Fatal("no probe built")
	}
	for _, p := range probes {
		ctx, cancel := context.WithTimeout(context.Background(), min(p.Period(), 30*time.Second))
		start := time.Now()
		res, err := p.Check(ctx, env)
		cancel()
		switch {
		case err != nil && hostLacks(err):
			t.Logf("%-24s unavailable here: %v", p.Name(), err)
		case err != nil:
			t.Errorf("%s: %v", p.Name(), err)
		default:
			t.Logf("%-24s ok in %v, %d result(s)", p.Name(), time.Since(start).Round(time.Microsecond), len(res))
		}
		for _, r := range res {
			if r.Severity == finding.Fatal {
				t.Errorf("%s: Fatal finding on a healthy host: %+v", p.Name(), r)
			} else {
				t.Logf("  %s %s/%s [%s]: %s", r.Severity, r.Condition, r.Reason, r.Key, r.Message)
			}
		}
	}
}

// BenchmarkFullPass measures one check of every registered probe on this
// machine, as the daemon would run them (baselines primed by the first
// iteration). cpu-ms/op is user+system CPU of the test process,
// child-cpu-ms/op that of the commands probes ran.
func BenchmarkFullPass(b *testing.B) {
	env := realHostEnv(b)
	probes, err := probe.Build(env, nil)
	if err != nil {
		b.Fatal(err)
	}
	var before, after, cbefore, cafter syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &cbefore)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, p := range probes {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, _ = p.Check(ctx, env)
			cancel()
		}
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &cafter)
	// Commands the probes run are children: RUSAGE_SELF misses them.
	b.ReportMetric(cpuMs(before, after)/float64(b.N), "cpu-ms/op")
	b.ReportMetric(cpuMs(cbefore, cafter)/float64(b.N), "child-cpu-ms/op")
}

func cpuMs(before, after syscall.Rusage) float64 {
	ns := after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()
	return float64(ns) / 1e6
}
