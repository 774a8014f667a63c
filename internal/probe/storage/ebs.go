package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// ebsPerformanceConfig is probes.ebs-performance.
var ebsPerformance = probe.Kind{Name: "ebs-performance", Period: 10 * time.Minute}

type ebsPerformanceSettings struct {
	// ExceededPerMinute: a counter that grew by more than this much time
	// spent over a limit per minute between two checks fires (NMA: 5 s per
	// minute, i.e. 50 s per 10-minute poll).
	ExceededPerMinute time.Duration `yaml:"exceededPerMinute"`
}

func (s ebsPerformanceSettings) Validate() error {
	if s.ExceededPerMinute <= 0 || s.ExceededPerMinute > time.Minute {
		return fmt.Errorf("exceededPerMinute %v: want more than 0 and at most 1m", s.ExceededPerMinute)
	}
	return nil
}

type ebsPerformanceProbe struct {
	probe.Base
	perMinute time.Duration
	admin     probe.NVMeAdmin

	mu sync.Mutex
	// last is each volume's previous sample; the first sample of a volume
	// is only a baseline.
	last map[string]ebsSample
	// results are the previous check's results, repeated for a volume
	// that cannot be read this time.
	results []probe.Result
}

type ebsSample struct {
	at       time.Time
	counters [4]uint64
}

// Identify Controller fields (NVMe base specification): PCI vendor ID at
// byte 0, serial number at 4–23, model number at 24–63, both ASCII padded
// with spaces.
const (
	amazonVendorID = 0x1D0F
	ebsModel       = "Amazon Elastic Block Store"
)

// The EBS statistics log page (Amazon's vendor page 0xD0, 4096 bytes,
// little-endian): a 32-bit magic then 4 reserved bytes, then 64-bit
// cumulative counters — read ops, write ops, read bytes, write bytes, read
// time, write time, and the four "time spent over a limit" counters in µs
// used here — then the queue length, reserved space and two latency
// histograms.
const (
	ebsStatsMagic = 0x3C23B510
	// Offsets of the four counters, in the order of ebsCounters.
	ebsVolumeIOPSOffset       = 56
	ebsVolumeThroughputOffset = 64
	ebsInstanceIOPSOffset     = 72
	ebsInstanceTPOffset       = 80
)

// ebsCounters maps each counter to its reason and the words of NMA's
// message.
var ebsCounters = [4]struct {
	offset int
	reason *reason.Reason
	what   string
}{
	{ebsVolumeIOPSOffset, ebsVolumeIOPSExceeded, "configured IOPS"},
	{ebsVolumeThroughputOffset, ebsVolumeThroughputExceeded, "configured throughput"},
	{ebsInstanceIOPSOffset, ebsInstanceIOPSExceeded, "instance IOPS"},
	{ebsInstanceTPOffset, ebsInstanceThroughputExceeded, "instance throughput"},
}

// nvmeNamespaceRE matches namespace block devices (nvme1n1), not
// partitions or controllers' character devices.
var nvmeNamespaceRE = regexp.MustCompile(`^nvme[0-9]+n[0-9]+$`)

var (
	ebsVolumeIOPSExceeded = ebsPerformance.Reason(reason.Reason{
		Name: "EBSVolumeIOPSExceeded", Condition: finding.StorageReady, Severity: finding.Warning,
		Description: "The EBS volume reports (in its NVMe statistics) more than 5 s per minute (probes.ebs-performance.exceededPerMinute) " +
			"spent above its provisioned IOPS since the previous check: EBS throttles its I/O. The key is the volume ID.",
		Action: "Raise the volume's provisioned IOPS (gp3, io2) or spread the I/O over more volumes.",
	})
	ebsVolumeThroughputExceeded = ebsPerformance.Reason(reason.Reason{
		Name: "EBSVolumeThroughputExceeded", Condition: finding.StorageReady, Severity: finding.Warning,
		Description: "The EBS volume reports more than 5 s per minute spent above its provisioned throughput since the previous " +
			"check: EBS throttles its I/O. The key is the volume ID.",
		Action: "Raise the volume's provisioned throughput (gp3) or spread the I/O over more volumes.",
	})
	ebsInstanceIOPSExceeded = ebsPerformance.Reason(reason.Reason{
		Name: "EBSInstanceIOPSExceeded", Condition: finding.StorageReady, Severity: finding.Warning,
		Description: "An EBS volume reports more than 5 s per minute spent above the instance's EBS IOPS limit (all volumes " +
			"together) since the previous check. The key is the volume ID.",
		Action: "Move to an instance type with a higher EBS-optimized IOPS limit, or move I/O to instance storage.",
	})
	ebsInstanceThroughputExceeded = ebsPerformance.Reason(reason.Reason{
		Name: "EBSInstanceThroughputExceeded", Condition: finding.StorageReady, Severity: finding.Warning,
		Description: "An EBS volume reports more than 5 s per minute spent above the instance's EBS throughput limit (all " +
			"volumes together) since the previous check. The key is the volume ID.",
		Action: "Move to an instance type with more EBS bandwidth, or move I/O to instance storage.",
	})
)

func init() {
	probe.Register(ebsPerformance, ebsPerformanceSettings{ExceededPerMinute: 5 * time.Second}, func(env *probe.Env, b probe.Base, s ebsPerformanceSettings) (probe.Probe, error) {
		var admin probe.NVMeAdmin = probe.DirectNVMeAdmin()
		if env.Privileged != nil {
			admin = env.Privileged
		}
		return &ebsPerformanceProbe{Base: b, perMinute: s.ExceededPerMinute, admin: admin}, nil
	})
}

// Needs: a volume's first reading is only a baseline.
func (p *ebsPerformanceProbe) Needs() probe.Needs { return probe.Needs{Checks: 2} }

// ebsIdentity is what Identify Controller says about a device.
type ebsIdentity struct {
	vendor        uint16
	serial, model string
}

func parseIdentify(b []byte) (ebsIdentity, error) {
	if len(b) < 64 {
		return ebsIdentity{}, fmt.Errorf("identify data: %d bytes, want at least 64", len(b))
	}
	return ebsIdentity{
		vendor: binary.LittleEndian.Uint16(b[0:2]),
		serial: string(bytes.TrimRight(b[4:24], " \x00")),
		model:  string(bytes.TrimRight(b[24:64], " \x00")),
	}, nil
}

// ebsVolumeID turns the controller serial ("vol0123…") into the volume ID
// ("vol-0123…") that the EC2 API and the console show.
func ebsVolumeID(serial string) string {
	if rest, ok := strings.CutPrefix(serial, "vol"); ok && !strings.HasPrefix(rest, "-") {
		return "vol-" + rest
	}
	return serial
}

func parseEBSLogPage(b []byte) ([4]uint64, error) {
	var c [4]uint64
	if len(b) < ebsInstanceTPOffset+8 {
		return c, fmt.Errorf("EBS log page: %d bytes, too short", len(b))
	}
	if m := binary.LittleEndian.Uint32(b[0:4]); m != ebsStatsMagic {
		return c, fmt.Errorf("EBS log page: magic %#x, want %#x", m, ebsStatsMagic)
	}
	for i, ctr := range ebsCounters {
		c[i] = binary.LittleEndian.Uint64(b[ctr.offset : ctr.offset+8])
	}
	return c, nil
}

// Check reads each EBS volume's counters of time spent over its own or the
// instance's IOPS and throughput limits, and fires when one grew by more
// than the allowance since the previous check. The first reading of a
// volume is a baseline: NMA starts from 0 and so reports everything since
// the volume was attached on its first poll. A counter that went down (the
// volume was re-attached) is re-baselined instead of wrapping around.
func (p *ebsPerformanceProbe) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	paths, err := filepath.Glob(host.Path(env.Root, "/dev/nvme*"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	now := env.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		p.last = map[string]ebsSample{}
	}
	var out []probe.Result
	var errs []error
	read := map[string]bool{}
	seen := map[string]bool{}
	for _, path := range paths {
		name := filepath.Base(path)
		if !nvmeNamespaceRE.MatchString(name) {
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		raw, err := p.admin.IdentifyController(ctx, path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: identify: %w", name, err))
			continue
		}
		id, err := parseIdentify(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		if id.vendor != amazonVendorID || id.model != ebsModel {
			continue // instance store or another vendor's disk
		}
		vol := ebsVolumeID(id.serial)
		if seen[vol] {
			continue // another namespace of a volume already read
		}
		seen[vol] = true
		page, err := p.admin.LogPage(ctx, path, probe.EBSLogPageID, probe.EBSLogPageSize)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: log page %#x: %w", name, probe.EBSLogPageID, err))
			continue
		}
		counters, err := parseEBSLogPage(page)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		read[vol] = true
		prev, ok := p.last[vol]
		p.last[vol] = ebsSample{at: now, counters: counters}
		if !ok {
			continue
		}
		// The allowance scales with the time actually covered (a failed
		// check in between makes it longer), never less than a period.
		allowance := time.Duration(float64(p.perMinute) * max(now.Sub(prev.at), p.Period()).Minutes())
		for i, ctr := range ebsCounters {
			if counters[i] < prev.counters[i] {
				continue
			}
			over := time.Duration(counters[i]-prev.counters[i]) * time.Microsecond
			if over <= allowance {
				continue
			}
			bdev := "/dev/" + name
			out = append(out, ctr.reason.Result(fmt.Sprintf("Volume %s (%s) reported exceeded %s for %s", vol, bdev, ctr.what, over), vol))
		}
	}
	if len(errs) == 0 {
		for vol := range p.last {
			if !seen[vol] {
				delete(p.last, vol) // detached: a re-attachment starts over
			}
		}
	} else {
		// Keep what was reported for volumes that could not be read, so
		// that a transient ioctl failure clears nothing.
		for _, r := range p.results {
			if !read[r.Key] {
				out = append(out, r)
			}
		}
		if len(read) == 0 && len(out) == 0 {
			return nil, errors.Join(errs...)
		}
		if env.Log != nil {
			env.Log.Warn("some NVMe devices could not be read", "probe", p.Name(), "err", errors.Join(errs...))
		}
	}
	p.results = out
	return out, nil
}
