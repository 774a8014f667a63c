package main

import (
	"log/slog"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/probe"
)

// setupProbes: periodic checks of the kernel, container runtime, storage
// and networking (internal/probe/...), run as one detector. The detectors
// are built again from each configuration the daemon installs, so
// probes.enabled takes effect on reload like the probes' own sections.
func (e *env) setupProbes() {
	tags := e.hostTags()
	e.detectors = append(e.detectors, func(sc daemon.SourceContext) []detector.Detector {
		if sc.Config != nil && !sc.Config.Probes.On() {
			sc.Logger.Info("host probes disabled by probes.enabled: false in the configuration")
			return nil
		}
		penv := e.probeEnv(sc.Root, sc.Logger, tags)
		probes := buildProbes(penv, sc.Config, sc.Logger)
		if len(probes) == 0 {
			return nil
		}
		return []detector.Detector{&probe.Runner{Env: penv, Probes: probes, Observe: e.metrics.ObserveProbe, Seed: sc.Active}}
	})
}

// hostTags are --tags and what the host says of itself.
func (e *env) hostTags() map[string]bool {
	return probe.HostTags(e.o.root, strings.Split(e.o.tags, ","))
}

// probeEnv is the real environment probes run in.
func (e *env) probeEnv(root string, log *slog.Logger, tags map[string]bool) *probe.Env {
	return &probe.Env{Root: root, Log: log, Now: time.Now, Tags: tags, Run: probe.ExecRunner, Privileged: e.privileged()}
}

// buildProbes builds every registered probe from the config's probes
// sections. A section that does not decode is logged and every probe runs
// with its defaults, as the daemon does with a config it cannot read:
// detection carries on and the error is in the log.
func buildProbes(penv *probe.Env, cfg *config.Config, log *slog.Logger) []probe.Probe {
	var sections map[string]yaml.Node
	if cfg != nil {
		sections = cfg.Probes.Sections
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
