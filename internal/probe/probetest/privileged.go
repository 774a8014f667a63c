package probetest

import (
	"context"
	"errors"

	"github.com/nodehealthd/nodehealthd/internal/probe"
)

// Privileged stands in for the helper: its answers differ from the
// fixture tree, so a probe that bypassed it would be caught.
type Privileged struct {
	probe.NVMeAdmin
	Procs    []probe.Process
	Commands map[string]string
	Calls    []string
}

func (f *Privileged) Processes(_ context.Context, environ bool) ([]probe.Process, error) {
	f.Calls = append(f.Calls, "processes")
	out := make([]probe.Process, len(f.Procs))
	copy(out, f.Procs)
	if !environ {
		for i := range out {
			out[i].Environ = -1
		}
	}
	return out, nil
}

func (f *Privileged) Command(_ context.Context, name string) ([]byte, error) {
	f.Calls = append(f.Calls, "command "+name)
	out, ok := f.Commands[name]
	if !ok {
		return nil, errors.New("helper: no such command")
	}
	return []byte(out), nil
}
