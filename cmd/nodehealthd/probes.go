package main

import (
	"flag"
	"log/slog"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/probe"
)

// Host probes: periodic checks of the kernel, container runtime, storage
// and networking (internal/probe), run as one detector.
var (
	probesOn  bool
	probeTags string
)

func init() {
	register(subsystem{
		name: "probes",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&probesOn, "probes", true, "run the host probes (kernel, container runtime, storage and networking checks)")
			fs.StringVar(&probeTags, "tags", "", "comma-separated host tags the host cannot tell itself (eks-auto, hybrid); the os-release ID is always added")
		},
		setup: setupProbes,
	})
}

func setupProbes(e *env) error {
	if !probesOn {
		e.log.Info("host probes disabled by --probes=false")
		return nil
	}
	tags := probe.HostTags(e.root, strings.Split(probeTags, ","))
	// Another subsystem (accelerators) may have set NewDetectors already,
	// or set it after us and keep ours the same way: compose, never
	// replace.
	prev := e.opts.NewDetectors
	e.opts.NewDetectors = func(sc daemon.SourceContext) []detector.Detector {
		var dets []detector.Detector
		if prev != nil {
			dets = prev(sc)
		}
		penv := newProbeEnv(sc.Root, sc.Logger, tags)
		probes := buildProbes(penv, sc.Config, sc.Logger)
		if len(probes) == 0 {
			return dets
		}
		return append(dets, &probe.Runner{Env: penv, Probes: probes, Observe: daemonMetrics.ObserveProbe, Seed: sc.Active})
	}
	return nil
}

// newProbeEnv is the real environment probes run in.
func newProbeEnv(root string, log *slog.Logger, tags map[string]bool) *probe.Env {
	return &probe.Env{Root: root, Log: log, Now: time.Now, Tags: tags, Run: probe.ExecRunner, Privileged: privileged()}
}

// buildProbes builds every registered probe from the config's probes
// sections. A section that does not decode is logged and every probe runs
// with its defaults, as the daemon does with a config it cannot read:
// detection carries on and the error is in the log.
func buildProbes(penv *probe.Env, cfg *config.Config, log *slog.Logger) []probe.Probe {
	var sections map[string]yaml.Node
	if cfg != nil {
		sections = cfg.Probes
	}
	probes, err := probe.Build(penv, sections)
	if err == nil {
		return probes
	}
	log.Error("invalid probes configuration; running every probe with its defaults", "err", err)
	probes, err = probe.Build(penv, nil)
	if err != nil {
		log.Error("cannot build host probes; running without them", "err", err)
		return nil
	}
	return probes
}
