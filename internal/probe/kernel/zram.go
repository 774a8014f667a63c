package kernel

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

var zramKind = probe.Kind{Name: "zram", Period: 5 * time.Minute}

var zramHighUsage = zramKind.Reason(reason.Reason{
	Name: "ZramHighUsage", Condition: finding.KernelReady, Severity: finding.Warning,
	Description: "A zram device holds uncompressed data amounting to more than 10% (probes.zram.threshold) of its size: the node " +
		"is swapping into compressed memory, which costs CPU and is a sign of memory pressure. The key is the device.",
	Action: "Check the memory requests and limits of the pods on the node; right-size them or the instance type. " +
		"If swap is not wanted on this node, switch zram off in the OS configuration.",
})

func init() { registerFraction(zramKind, 0.10, checkZram) }

// checkZram compares each zram device's orig_data_size (first field of
// mm_stat) with its disksize; threshold is the fraction of the disksize
// holding (uncompressed) data above which a device fires. Unused and
// unconfigured devices are skipped.
func checkZram(ctx context.Context, env *probe.Env, threshold float64) ([]probe.Result, error) {
	devs, err := filepath.Glob(host.Path(env.Root, "/sys/block/zram*"))
	if err != nil {
		return nil, err
	}
	var out []probe.Result
	for _, dir := range devs {
		dev := filepath.Base(dir)
		mm, err := os.ReadFile(filepath.Join(dir, "mm_stat"))
		if err != nil {
			// A device being hot-removed, or one never initialised.
			continue
		}
		f := strings.Fields(string(mm))
		if len(f) < 2 {
			return nil, fmt.Errorf("%s/mm_stat: %q: want at least orig and compr sizes", dev, mm)
		}
		orig, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s/mm_stat: %w", dev, err)
		}
		if orig == 0 {
			continue
		}
		ds, err := os.ReadFile(filepath.Join(dir, "disksize"))
		if err != nil {
			continue
		}
		size, err := strconv.ParseUint(strings.TrimSpace(string(ds)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s/disksize: %w", dev, err)
		}
		if size == 0 {
			continue
		}
		ratio := float64(orig) / float64(size)
		if ratio <= threshold {
			continue
		}
		out = append(out, zramHighUsage.Result(fmt.Sprintf("ZRAM device %s at %.1f%% capacity", dev, ratio*100), dev))
	}
	return out, nil
}
