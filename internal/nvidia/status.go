package nvidia

import (
	"slices"
	"sync"
	"time"
)

// Status is how NVML monitoring stands, for metrics and status output: a
// GPU node whose NVML checks are not running must be visible as such, not
// look like a healthy one.
type Status struct {
	// Enabled: this is an NVIDIA node and NVML checks are switched on.
	Enabled bool `json:"enabled"`
	// Available: NVML is initialised and answering.
	Available     bool   `json:"available"`
	DriverVersion string `json:"driverVersion,omitempty"`
	Devices       int    `json:"devices"`
	// XIDEvents: XID events are delivered by NVML for at least one GPU
	// (kmsg sees XIDs either way).
	XIDEvents bool `json:"xidEvents"`
	// LastError is the latest NVML failure (initialisation or a read).
	LastError    string    `json:"lastError,omitempty"`
	FailingSince time.Time `json:"failingSince,omitzero"`
	// Hung names an NVML call that did not return in time and is still
	// stuck in the driver.
	Hung      string    `json:"hung,omitempty"`
	HungSince time.Time `json:"hungSince,omitzero"`
	LastPoll  time.Time `json:"lastPoll,omitzero"`
	// GPUs are the readings of the last poll (kept while NVML fails, so
	// LastPoll says how old they are).
	GPUs []GPUStatus `json:"gpus,omitempty"`
}

// GPUStatus is one GPU as the last poll read it. A reading that could not
// be taken is absent, and Unchecked says why.
type GPUStatus struct {
	Index int    `json:"index"`
	PCI   string `json:"pci,omitempty"`
	Name  string `json:"name,omitempty"`
	UUID  string `json:"uuid,omitempty"`
	// Lost: NVML counts the GPU but cannot reach it (fallen off the bus).
	Lost bool `json:"lost,omitempty"`
	// ReadError: the GPU could not be read at all in the last poll.
	ReadError    string  `json:"readError,omitempty"`
	TemperatureC *uint32 `json:"temperatureC,omitempty"`
	// UncorrectedECC counts double-bit errors since the last GPU reset.
	UncorrectedECC *uint64       `json:"uncorrectedECC,omitempty"`
	RetiredPages   *RetiredPages `json:"retiredPages,omitempty"`
	RemappedRows   *RemappedRows `json:"remappedRows,omitempty"`
	NVLinks        *NVLinks      `json:"nvlinks,omitempty"`
	PCIe           *PCIeStatus   `json:"pcie,omitempty"`
	ClockEvents    *ClockEvents  `json:"clockEvents,omitempty"`
	Fabric         *FabricStatus `json:"fabric,omitempty"`
	// InfoROM is "valid" or "corrupt".
	InfoROM string `json:"inforom,omitempty"`
	// XIDs are the latest XID events NVML delivered for this GPU since the
	// daemon started (kmsg's are findings).
	XIDs []XIDEvent `json:"xids,omitempty"`
	// Unchecked maps a reading to why it could not be taken ("not
	// supported", "not in this driver", an NVML error).
	Unchecked map[string]string `json:"unchecked,omitempty"`
}

type RetiredPages struct {
	SBE     int  `json:"sbe"`
	DBE     int  `json:"dbe"`
	Pending bool `json:"pending"`
}

type RemappedRows struct {
	Correctable   int  `json:"correctable"`
	Uncorrectable int  `json:"uncorrectable"`
	Pending       bool `json:"pending"`
	Failed        bool `json:"failed"`
}

type NVLinks struct {
	Up    int `json:"up"`
	Total int `json:"total"`
}

// PCIeStatus is the link to the host; a zero field was not read.
type PCIeStatus struct {
	Gen      int     `json:"gen,omitempty"`
	MaxGen   int     `json:"maxGen,omitempty"`
	Width    int     `json:"width,omitempty"`
	MaxWidth int     `json:"maxWidth,omitempty"`
	Replays  *uint64 `json:"replays,omitempty"`
	// PState is the performance state (0 = P0), which sets the link's
	// generation on an idle GPU.
	PState *int `json:"pstate,omitempty"`
}

// ClockEvents are the active clock event (throttle) reasons.
type ClockEvents struct {
	Mask    uint64   `json:"mask"`
	Reasons []string `json:"reasons,omitempty"`
}

type FabricStatus struct {
	// State is Fabric Manager's registration of the GPU as DCGM names it
	// (NotSupported, NotStarted, InProgress, Success, Failure).
	State      string   `json:"state"`
	HealthMask *uint32  `json:"healthMask,omitempty"`
	Faults     []string `json:"faults,omitempty"`
	// Summary is the driver's own verdict where it gives one (Healthy,
	// Unhealthy, LimitedCapacity).
	Summary string `json:"summary,omitempty"`
}

type XIDEvent struct {
	XID uint64    `json:"xid"`
	At  time.Time `json:"at"`
}

// StatusBoard holds the current Status. It outlives detector restarts, so
// it also remembers whether the current outage was already reported.
type StatusBoard struct {
	mu       sync.Mutex
	s        Status
	reported bool
}

// LiveSection is the name under which the daemon publishes DefaultStatus
// on its lock socket (state.Live.Sections) for nodehealthctl gpu.
const LiveSection = "gpu"

// DefaultStatus is the process's board; the daemon's detector writes it.
var DefaultStatus = &StatusBoard{}

// Get returns a copy of the status. What GPUs refers to is never
// changed once on the board (writers replace it), so a shallow copy of the
// slice is enough.
func (b *StatusBoard) Get() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.s
	s.GPUs = slices.Clone(s.GPUs)
	return s
}

// SetEnabled records whether NVML checks run on this node.
func (b *StatusBoard) SetEnabled(on bool) {
	b.update(func(s *Status) { s.Enabled = on })
}

func (b *StatusBoard) update(f func(*Status)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.s)
}

// failed records an outage and reports whether it is the first report of
// this outage that should become a finding (once it has lasted grace).
func (b *StatusBoard) failed(now time.Time, err string, grace time.Duration) (report bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.s.Available = false
	b.s.LastError = err
	if b.s.FailingSince.IsZero() {
		b.s.FailingSince = now
	}
	if !b.reported && now.Sub(b.s.FailingSince) >= grace {
		b.reported = true
		return true
	}
	return false
}

// setGPUs publishes a poll's readings.
func (b *StatusBoard) setGPUs(now time.Time, gpus []GPUStatus) {
	b.update(func(s *Status) { s.LastPoll, s.GPUs = now, gpus })
}

// noteXID adds an XID event to the GPU's list without waiting for the
// next poll. The GPU's entry is replaced, not changed, so copies handed
// out by Get stay as they were.
func (b *StatusBoard) noteXID(pci string, xids []XIDEvent) {
	b.update(func(s *Status) {
		for i, g := range s.GPUs {
			if g.PCI == pci {
				gpus := slices.Clone(s.GPUs)
				gpus[i].XIDs = xids
				s.GPUs = gpus
				return
			}
		}
	})
}

// working records that NVML answers again; the next outage is reported
// afresh.
func (b *StatusBoard) working(driver string, devices int, xid bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.s.Available, b.s.DriverVersion, b.s.Devices, b.s.XIDEvents = true, driver, devices, xid
	b.s.LastError, b.s.FailingSince, b.s.Hung, b.s.HungSince = "", time.Time{}, "", time.Time{}
	b.reported = false
}
