package all_test

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/probe"
	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"

	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// TestProbeReasonsDeclaredWithPeriod: every probe declares at least one
// reason, every reason declared for a probe names a registered one, and
// its declared period is the probe's default (what docs/reasons.md says).
func TestProbeReasonsDeclaredWithPeriod(t *testing.T) {
	// Factories decide on host tags and, for Neuron, on the PCI bus; a
	// Neuron fixture built with each tag builds every probe at least once.
	// A Neuron device with its driver and device node builds the neuron probe.
	ft := probetest.NewTree(t)
	ft.Write("/sys/bus/pci/devices/0000:10:1c.0/vendor", "0x1d0f\n")
	ft.Write("/sys/bus/pci/devices/0000:10:1c.0/device", "0x7164\n")
	ft.Write("/sys/bus/pci/devices/0000:10:1c.0/class", "0x088000\n")
	ft.Symlink("/sys/bus/pci/devices/0000:10:1c.0/driver", "../../../../bus/pci/drivers/neuron-driver")
	ft.Write("/dev/neuron0", "")
	root := ft.Root
	periods := map[string]time.Duration{}
	for _, tag := range []string{"", "eks-auto", "hybrid", "ubuntu", "bottlerocket"} {
		env, _, _ := probetest.At(t, root).Fake(tag)
		probes, err := probe.Build(env, nil)
		if err != nil {
			t.Fatalf("tag %q: %v", tag, err)
		}
		for _, p := range probes {
			periods[p.Name()] = p.Period()
		}
	}
	for _, name := range probe.Names() {
		if _, ok := periods[name]; !ok {
			t.Errorf("probe %s was built on none of the test hosts: give this test a host it applies to", name)
		}
		if len(reason.Of("probe:"+name)) == 0 {
			t.Errorf("probe %s declares no reason", name)
		}
	}
	for _, r := range reason.All() {
		name, ok := strings.CutPrefix(r.Detector, "probe:")
		if !ok {
			continue
		}
		switch period, built := periods[name]; {
		case !built:
			t.Errorf("%s is declared for %s, which is not a registered probe (registered: %v)", r.Name, r.Detector, probe.Names())
		case r.Period != period:
			t.Errorf("%s is declared with period %v, probe %s runs every %v by default", r.Name, r.Period, name, period)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	env := probetest.NewTree(t).Env()
	for _, c := range []struct{ probe, section, want string }{
		{"pid-max", "threshold: 1.5", "threshold"},
		{"open-files", "period: 10ms", "period"},
		{"zombies", "consecutive: 0", "consecutive"},
		{"zram", "typo: 1", "typo"},
		{"io-delays", "thresholdTicks: 0", "thresholdTicks"},
		{"ebs-performance", "exceededPerMinute: 2m", "exceededPerMinute"},
		{"containerd-deprecations", "command: ''", "command"},
	} {
		_, err := probetest.BuildErr(t, env, c.probe, c.section)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q: want an error about %s, got %v", c.probe, c.section, c.want, err)
		}
	}
	// enabled: false builds nothing.
	for _, name := range []string{"pid-max", "open-files", "zombies", "large-environment", "clock-sync", "zram",
		"repeated-restart", "containerd-deprecations", "io-delays", "xfs-free-space", "ebs-performance"} {
		p, err := probetest.BuildErr(t, env, name, "enabled: false")
		if err != nil || p != nil {
			t.Errorf("%s enabled: false: got %v, %v", name, p, err)
		}
	}
}

// TestNeedsLiveHostOfProcessProbes: a probe that lists processes reads
// the tree's /proc in-process but the running host's through the helper,
// which ignores Env.Root.
func TestNeedsLiveHostOfProcessProbes(t *testing.T) {
	for _, name := range []string{"zombies", "io-delays", "large-environment", "ipamd"} {
		env, _, _ := probetest.At(t, t.TempDir()).Fake()
		if n := probetest.Build(t, env, name, "").Needs(); n.LiveHost != "" {
			t.Errorf("%s in-process: LiveHost %q, want none", name, n.LiveHost)
		}
		env.Privileged = &probetest.Privileged{}
		if n := probetest.Build(t, env, name, "").Needs(); n.LiveHost == "" {
			t.Errorf("%s through the helper: no LiveHost", name)
		}
	}
}

// TestNeedsLasting: the network policy agent's outage is timed on the
// clock, which the declaration carries.
func TestNeedsLasting(t *testing.T) {
	env, _, _ := probetest.At(t, t.TempDir()).Fake("eks-auto")
	for section, want := range map[string]time.Duration{"": 15 * time.Minute, "notRunningFor: 2m": 2 * time.Minute} {
		if got := probetest.Build(t, env, "network-policy-agent", section).Needs().Lasting; got != want {
			t.Errorf("%q: Lasting %v, want %v", section, got, want)
		}
	}
}

// TestBuildReportsEverySection: an operator fixing config.yaml should see
// every bad probes section at once, not one per attempt.
func TestBuildReportsEverySection(t *testing.T) {
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal([]byte("pid-max: {threshold: 2}\nzombies: {typo: 1}\nnope: {}\nzram: {period: 1m}\n"), &doc); err != nil {
		t.Fatal(err)
	}
	env := probetest.NewTree(t).Env()
	probes, err := probe.Build(env, doc)
	if err == nil || probes != nil {
		t.Fatalf("want an error and no probes, got %v, %v", probes, err)
	}
	for _, want := range []string{"probes.nope: no such probe", "probes.pid-max: threshold 2", "probes.zombies:", "typo"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "probes.zram") {
		t.Errorf("a valid section is reported:\n%v", err)
	}
}

// Every probe reads period alike: 0 means its default, as absent does (the
// network probes did so, the others refused 0s), and below MinPeriod is
// refused (the network probes took 1ms).
func TestEveryProbeReadsPeriodAlike(t *testing.T) {
	env := probetest.NewTree(t).Env()
	for _, k := range probe.Kinds() {
		p, err := probetest.BuildErr(t, env, k.Name, "period: 0s")
		if err != nil {
			t.Errorf("%s period 0s: %v", k.Name, err)
		} else if p != nil && p.Period() != k.Period {
			t.Errorf("%s period 0s: runs every %v, want its default %v", k.Name, p.Period(), k.Period)
		}
		for _, bad := range []string{"1ms", "-1m"} {
			_, err := probetest.BuildErr(t, env, k.Name, "period: "+bad)
			if err == nil || !strings.Contains(err.Error(), "period "+bad) || !strings.Contains(err.Error(), "at least 1s") {
				t.Errorf("%s period %s: want an error about the period, got %v", k.Name, bad, err)
			}
		}
		p, err = probetest.BuildErr(t, env, k.Name, "period: 2m")
		if err != nil || (p != nil && p.Period() != 2*time.Minute) {
			t.Errorf("%s period 2m: got %v, %v", k.Name, p, err)
		}
	}
}
