package network

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// netEFABursts are NMA's bucket sizes for the EFA hardware counters.
var netEFABursts = map[string]int{
	"rx_drops":                    100,
	"rdma_write_wr_err":           100,
	"rdma_read_wr_err":            100,
	"unresponsive_remote_events":  100,
	"impaired_remote_conn_events": 100,
	"retrans_bytes":               1_000_000,
	"retrans_pkts":                1_000,
	"retrans_timeout_events":      100,
}

var efaKind = probe.Kind{Name: "efa", Period: time.Minute}

type netEFASettings struct {
	// Bursts overrides the bucket size per counter.
	Bursts map[string]int `yaml:"bursts"`
	// RefillEvery is how often one token returns to each bucket.
	RefillEvery time.Duration `yaml:"refillEvery"`
}

func (s netEFASettings) Validate() error {
	_, err := netBursts(netEFABursts, s.Bursts)
	return errors.Join(err, probe.Positive(map[string]time.Duration{"refillEvery": s.RefillEvery}))
}

type netEFA struct {
	probe.Base
	refill time.Duration
	bursts map[string]int
	// counters persist across polls, keyed by "dev:port/counter".
	counters map[string]*netCounter
	// none says the last check found no EFA device (see Dormant).
	none atomic.Bool
}

// Dormant reports that the last check found no EFA device: most instances
// have none, and one appears only with a driver loaded late in boot.
func (p *netEFA) Dormant() bool { return p.none.Load() }

var efaErrorMetric = efaKind.Reason(reason.Reason{
	Name: "EFAErrorMetric", Condition: finding.NetworkingReady, Severity: finding.Warning,
	Description: "An EFA device's hardware error counter (receive drops, RDMA read or write errors, unresponsive remote or " +
		"impaired connection events, retransmissions) grew faster than its allowed burst (probes.efa.bursts). The key " +
		"names the device, port and counter. On an instance without an EFA device the probe looks for one less and " +
		"less often, its period doubling up to 10 minutes.",
	Action: "Check the counters under /sys/class/infiniband/<dev>/ports/<port>/hw_counters and the workload's peers. " +
		"Errors that persist on one node while its peers are clean point to hardware: replace the node.",
})

func init() {
	probe.Register(efaKind, netEFASettings{RefillEvery: time.Second}, func(_ *probe.Env, b probe.Base, s netEFASettings) (probe.Probe, error) {
		bursts, _ := netBursts(netEFABursts, s.Bursts)
		return &netEFA{Base: b, refill: s.RefillEvery, bursts: bursts, counters: map[string]*netCounter{}}, nil
	})
}

// Needs: a counter's first reading is only a baseline.
func (p *netEFA) Needs() probe.Needs { return probe.Needs{Checks: 2} }

// Check reads the EFA devices' hardware counters from sysfs. The first
// reading of each counter is its baseline: NMA started from 0 and so
// reported every counter's lifetime total on its first poll (B10 quirk 9).
func (p *netEFA) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	ibDir := host.Path(env.Root, "/sys/class/infiniband")
	devs, err := os.ReadDir(ibDir)
	if errors.Is(err, os.ErrNotExist) {
		p.counters = map[string]*netCounter{}
		p.none.Store(true)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := env.Now()
	seen := map[string]bool{}
	var out []probe.Result
	for _, d := range devs {
		dev := d.Name()
		devDir := filepath.Join(ibDir, dev)
		vendor, _ := netReadTrim(filepath.Join(devDir, "device", "vendor"))
		device, _ := netReadTrim(filepath.Join(devDir, "device", "device"))
		// Amazon's PCI vendor and the EFA device IDs (0xefa0, 0xefa1…);
		// other RDMA devices count differently.
		if vendor != "0x1d0f" || !strings.HasPrefix(device, "0xefa") {
			continue
		}
		ports, err := os.ReadDir(filepath.Join(devDir, "ports"))
		if err != nil {
			env.Log.Debug("efa: no ports", "dev", dev, "err", err)
			continue
		}
		for _, port := range ports {
			for counter, burst := range p.bursts {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				s, err := netReadTrim(filepath.Join(devDir, "ports", port.Name(), "hw_counters", counter))
				if err != nil {
					continue
				}
				v, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					env.Log.Debug("efa: bad counter", "dev", dev, "counter", counter, "value", s)
					continue
				}
				where := dev + ":" + port.Name()
				key := where + "/" + counter
				seen[key] = true
				c := p.counters[key]
				if c == nil {
					p.counters[key] = newNetCounter(v, p.refill, burst)
					continue
				}
				if old, exceeded := c.observe(now, v); exceeded {
					out = append(out, efaErrorMetric.Result(fmt.Sprintf("%s increased from %d to %d for device:port [%s]", counter, old, v, where), key))
				}
			}
		}
	}
	for k := range p.counters {
		if !seen[k] {
			delete(p.counters, k)
		}
	}
	p.none.Store(len(p.counters) == 0)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
