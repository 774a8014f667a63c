package nvidia

import (
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
}

// StatusBoard holds the current Status. It outlives detector restarts, so
// it also remembers whether the current outage was already reported.
type StatusBoard struct {
	mu       sync.Mutex
	s        Status
	reported bool
}

// DefaultStatus is the process's board; the daemon's detector writes it.
var DefaultStatus = &StatusBoard{}

// Get returns a copy of the status.
func (b *StatusBoard) Get() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.s
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

// working records that NVML answers again; the next outage is reported
// afresh.
func (b *StatusBoard) working(driver string, devices int, xid bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.s.Available, b.s.DriverVersion, b.s.Devices, b.s.XIDEvents = true, driver, devices, xid
	b.s.LastError, b.s.FailingSince, b.s.Hung, b.s.HungSince = "", time.Time{}, "", time.Time{}
	b.reported = false
}
