package main

import (
	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/hardware"
	"github.com/nodehealthd/nodehealthd/internal/nvidia"
)

// setupAccelerators: NVIDIA GPUs through NVML (internal/nvidia). XIDs from kmsg
// and Neuron's kmsg errors are rules of the catalogue; Neuron device
// presence is a host probe (internal/probe/accel_neuron.go).
func (e *env) setupAccelerators() {
	if hardware.Detect(e.o.root) != condition.Nvidia {
		return
	}
	// nodehealthctl gpu reads the board from the lock socket, also to say
	// that the checks are off.
	if e.opts.LiveSections == nil {
		e.opts.LiveSections = map[string]func() any{}
	}
	e.opts.LiveSections[nvidia.LiveSection] = func() any { return nvidia.DefaultStatus.Get() }
	nvidia.DefaultStatus.SetEnabled(e.o.nvml)
	if !e.o.nvml {
		e.log.Info("NVML checks disabled by --nvml=false; NVIDIA XIDs are still read from kmsg")
		return
	}
	// One library, one NVML worker and one IMDS cache for the process:
	// detectors are rebuilt on every reload, and a worker stuck in a hung
	// driver must not get a sibling.
	lib := nvidia.OpenLibrary(e.o.nvmlLibrary)
	caller := nvidia.NewCaller(e.log)
	imds := nvidia.NewIMDS()
	e.detectors = append(e.detectors, func(sc daemon.SourceContext) []detector.Detector {
		// XID events become findings by the rules the daemon runs.
		return []detector.Detector{nvidia.New(nvidia.Options{
			Lib: lib, Caller: caller, Root: sc.Root, Log: sc.Logger,
			InstanceType: imds.InstanceType, Interval: e.o.nvmlInterval,
		})}
	})
}
