package main

import (
	"flag"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/hardware"
	"github.com/nodehealthd/nodehealthd/internal/nvidia"
)

// Accelerators: NVIDIA GPUs through NVML (internal/nvidia). XIDs from kmsg
// and Neuron's kmsg errors are rules of the catalogue; Neuron device
// presence is a host probe (internal/probe/accel_neuron.go).
var (
	nvmlOn       bool
	nvmlLibrary  string
	nvmlInterval time.Duration
)

func init() {
	register(subsystem{
		name: "accelerators",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&nvmlOn, "nvml", true, "on NVIDIA nodes, check the GPUs through NVML (libnvidia-ml.so.1); XIDs are read from kmsg either way")
			fs.StringVar(&nvmlLibrary, "nvml-library", "", "path of libnvidia-ml.so.1 (default: the dynamic linker's search path; e.g. /run/nvidia/driver/usr/lib64/libnvidia-ml.so.1 with the GPU operator's driver container)")
			fs.DurationVar(&nvmlInterval, "nvml-interval", time.Minute, "how often NVML counters are polled (XID events are read as they happen)")
		},
		setup: setupAccelerators,
	})
}

func setupAccelerators(e *env) error {
	if hardware.Detect(e.root) != condition.Nvidia {
		return nil
	}
	// nodehealthctl gpu reads the board from the lock socket, also to say
	// that the checks are off.
	if e.opts.LiveSections == nil {
		e.opts.LiveSections = map[string]func() any{}
	}
	e.opts.LiveSections[nvidia.LiveSection] = func() any { return nvidia.DefaultStatus.Get() }
	nvidia.DefaultStatus.SetEnabled(nvmlOn)
	if !nvmlOn {
		e.log.Info("NVML checks disabled by --nvml=false; NVIDIA XIDs are still read from kmsg")
		return nil
	}
	// One library, one NVML worker and one IMDS cache for the process:
	// detectors are rebuilt on every reload, and a worker stuck in a hung
	// driver must not get a sibling.
	lib := nvidia.OpenLibrary(nvmlLibrary)
	caller := nvidia.NewCaller(e.log)
	imds := nvidia.NewIMDS()
	prev := e.opts.NewDetectors
	e.opts.NewDetectors = func(sc daemon.SourceContext) []detector.Detector {
		var dets []detector.Detector
		if prev != nil {
			dets = prev(sc)
		}
		// XID events become findings by the rules the daemon runs.
		return append(dets, nvidia.New(nvidia.Options{
			Lib: lib, Caller: caller, Root: sc.Root, Log: sc.Logger,
			InstanceType: imds.InstanceType, Interval: nvmlInterval,
		}))
	}
	return nil
}
