package nvidia

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/nodehealthd/nodehealthd/internal/host"
)

// Keys of the two device-count findings, which are independent problems.
const (
	countKeyFiles        = "device-files"
	countKeyInstanceType = "instance-type"
)

// DeviceFiles counts the GPU device nodes <root>/dev/nvidia<N> (not
// nvidiactl, nvidia-uvm, nvidia-caps…).
func DeviceFiles(root string) (int, error) {
	entries, err := os.ReadDir(host.Path(root, "/dev"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if rest, ok := strings.CutPrefix(e.Name(), "nvidia"); ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			n++
		}
	}
	return n, nil
}

// gpuCount is what enumeration found: GPUs NVML counts, and those of them
// it can no longer reach (fallen off the bus).
type gpuCount struct {
	nvml int
	lost []int
}

func (c gpuCount) usable() int { return c.nvml - len(c.lost) }

// evalCount compares the GPUs NVML can use with the device files and with
// the instance type's GPU count. Both need two consecutive polls: device
// files appear a moment after the driver loads.
func evalCount(ctx context.Context, root string, c gpuCount, instanceType func(context.Context) (string, error), cov coverage) []result {
	var out []result
	detected := fmt.Sprintf("%d GPUs", c.usable())
	if len(c.lost) > 0 {
		detected = fmt.Sprintf("%d usable GPUs (%d lost: index %s)", c.usable(), len(c.lost), joinInts(c.lost))
	}
	files, err := DeviceFiles(root)
	cov.keys[ReasonDeviceCountMismatch+"\x00"+countKeyFiles] = err == nil
	if err == nil && files != c.usable() {
		out = append(out, result{Result: deviceCountMismatch.Result(fmt.Sprintf("NVML detected %s but %d nvidia device files were detected", detected, files), countKeyFiles), Confirm: 2})
	}
	// Without an instance-type source there is nothing to compare with,
	// which is a check that passed, not one that could not run.
	typeOK := instanceType == nil
	if instanceType != nil {
		if it, err := instanceType(ctx); err == nil {
			typeOK = true
			if want, known := ExpectedGPUs(it); known && c.usable() < want {
				out = append(out, result{Result: deviceCountMismatch.Result(fmt.Sprintf("expected %d GPUs for this instance type (%s) but only %d were detected — possible hardware failure", want, it, c.usable()), countKeyInstanceType), Confirm: 2})
			}
		}
	}
	cov.keys[ReasonDeviceCountMismatch+"\x00"+countKeyInstanceType] = typeOK
	cov.reasons[ReasonDeviceCountMismatch] = err == nil && typeOK
	return out
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}
