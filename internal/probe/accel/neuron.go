package accel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/hardware"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// ReasonNeuronDeviceCountMismatch is ours: NMA checks Neuron only through
// the driver's kmsg errors, which a device whose driver never bound (or
// whose device node is missing) cannot produce.
const ReasonNeuronDeviceCountMismatch = "NeuronDeviceCountMismatch"

// accelNeuron compares the Neuron devices on the PCI bus with the device
// nodes workloads use (/dev/neuron<N>): a device without its driver or its
// node is invisible to the Neuron device plugin and to every job.
type accelNeuron struct {
	probe.Base
	// suspect is the problem seen on the previous check; a problem is
	// reported only when two consecutive checks see it, since device
	// nodes appear a moment after the driver binds at boot.
	suspect string
}

var neuronKind = probe.Kind{Name: "neuron", Period: time.Minute}

var neuronDeviceCountMismatch = neuronKind.Reason(reason.Reason{
	Name: ReasonNeuronDeviceCountMismatch, Condition: finding.AcceleratedHardwareReady, Severity: finding.Fatal,
	Description: "On a Neuron instance, a Neuron PCI device has no driver bound, or there are fewer /dev/neuron<N> device " +
		"files than Neuron devices, on two consecutive checks. The missing devices are invisible to the Neuron device " +
		"plugin and to every job.",
	Action: "Check the Neuron driver (lsmod | grep neuron, dmesg, the aws-neuronx-dkms package for the running kernel); " +
		"reinstall it or reboot, and replace the node if a device stays missing.",
})

func init() {
	probe.Register(neuronKind, probe.NoSettings{}, func(env *probe.Env, b probe.Base, _ probe.NoSettings) (probe.Probe, error) {
		if hardware.Detect(env.Root) != condition.Neuron {
			return nil, nil
		}
		return &accelNeuron{Base: b}, nil
	})
}

// Needs: a mismatch counts only when the next check sees it again.
func (p *accelNeuron) Needs() probe.Needs { return probe.Needs{Checks: 2} }

func (p *accelNeuron) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	devs := hardware.NeuronDevices(env.Root)
	nodes, err := neuronDeviceNodes(env.Root)
	if err != nil {
		return nil, err
	}
	var unbound []string
	for _, d := range devs {
		if d.Driver == "" {
			unbound = append(unbound, d.Addr)
		}
	}
	var problems []string
	if len(unbound) > 0 {
		problems = append(problems, fmt.Sprintf("Neuron PCI device(s) %s have no driver bound (is the aws-neuronx-dkms module loaded?)", strings.Join(unbound, ", ")))
	}
	if nodes < len(devs) {
		problems = append(problems, fmt.Sprintf("%d Neuron PCI devices but %d neuron device files were detected", len(devs), nodes))
	}
	msg := strings.Join(problems, "; ")
	confirmed := msg != "" && msg == p.suspect
	p.suspect = msg
	if !confirmed {
		return nil, nil
	}
	return []probe.Result{neuronDeviceCountMismatch.Result(msg, "")}, nil
}

// neuronDeviceNodes counts <root>/dev/neuron<N>.
func neuronDeviceNodes(root string) (int, error) {
	entries, err := os.ReadDir(host.Path(root, "/dev"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if rest, ok := strings.CutPrefix(e.Name(), "neuron"); ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			n++
		}
	}
	return n, nil
}
