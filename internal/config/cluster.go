package config

import (
	"fmt"
	"time"
)

// ClusterSettings tune publishing to the API server (internal/publish/
// cluster). Zero fields are the defaults below; they apply again on every
// reload.
type ClusterSettings struct {
	// Heartbeat is how often unchanged conditions are written again to
	// refresh lastHeartbeatTime (jittered up to +20%).
	Heartbeat time.Duration `yaml:"heartbeat,omitempty"`
	// WriteBurst and WritesPerMinute are the node's budget for all writes
	// (condition patches and events).
	WriteBurst      int     `yaml:"writeBurst,omitempty"`
	WritesPerMinute float64 `yaml:"writesPerMinute,omitempty"`
	// EventBurst and EventsPerMinute are each reason's event budget.
	EventBurst      int     `yaml:"eventBurst,omitempty"`
	EventsPerMinute float64 `yaml:"eventsPerMinute,omitempty"`
	// MaxPendingEventsPerReason bounds the distinct events of one reason
	// waiting for budget or the API server; more are dropped and counted.
	MaxPendingEventsPerReason int `yaml:"maxPendingEventsPerReason,omitempty"`
	// ExecTimeout bounds one run of the kubeconfig's exec credential
	// plugin (aws eks get-token); it is killed after that.
	ExecTimeout time.Duration `yaml:"execTimeout,omitempty"`
	// DiscoverInterval is the longest time between two looks for a
	// missing kubeconfig. The first looks are 10 s apart, then the gap
	// doubles: a kubelet's kubeconfig appears early in a node's boot, and
	// a host that never joins should not look every few seconds forever.
	DiscoverInterval time.Duration `yaml:"discoverInterval,omitempty"`
	// FileCheckInterval is how often the kubeconfig and the client
	// certificate are checked for changes (a few stat calls): the kubelet
	// rotates its certificate long before the old one expires.
	FileCheckInterval time.Duration `yaml:"fileCheckInterval,omitempty"`
	// NoWatch turns off the watch on the Node; re-registration and
	// overwrites are then repaired at the next heartbeat.
	NoWatch bool `yaml:"noWatch,omitempty"`
}

// Defaults of ClusterSettings.
const (
	DefaultHeartbeat                 = 5 * time.Minute
	DefaultWriteBurst                = 20
	DefaultWritesPerMinute           = 12
	DefaultEventBurst                = 5
	DefaultEventsPerMinute           = 1
	DefaultMaxPendingEventsPerReason = 20
	DefaultExecTimeout               = 30 * time.Second
	DefaultDiscoverInterval          = time.Minute
	DefaultFileCheckInterval         = 30 * time.Second
)

// WithDefaults returns s with its zero fields set to the defaults.
func (s ClusterSettings) WithDefaults() ClusterSettings {
	or := func(v, d float64) float64 {
		if v == 0 {
			return d
		}
		return v
	}
	s.Heartbeat = time.Duration(or(float64(s.Heartbeat), float64(DefaultHeartbeat)))
	s.WriteBurst = int(or(float64(s.WriteBurst), DefaultWriteBurst))
	s.WritesPerMinute = or(s.WritesPerMinute, DefaultWritesPerMinute)
	s.EventBurst = int(or(float64(s.EventBurst), DefaultEventBurst))
	s.EventsPerMinute = or(s.EventsPerMinute, DefaultEventsPerMinute)
	s.MaxPendingEventsPerReason = int(or(float64(s.MaxPendingEventsPerReason), DefaultMaxPendingEventsPerReason))
	s.ExecTimeout = time.Duration(or(float64(s.ExecTimeout), float64(DefaultExecTimeout)))
	s.DiscoverInterval = time.Duration(or(float64(s.DiscoverInterval), float64(DefaultDiscoverInterval)))
	s.FileCheckInterval = time.Duration(or(float64(s.FileCheckInterval), float64(DefaultFileCheckInterval)))
	return s
}

// Check returns the key and the problem of the first invalid field; zero
// fields are valid (the defaults).
func (s ClusterSettings) Check() (key string, err error) {
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"heartbeat", s.Heartbeat}, {"discoverInterval", s.DiscoverInterval}, {"fileCheckInterval", s.FileCheckInterval}} {
		if d.v != 0 && d.v < time.Second {
			return d.key, fmt.Errorf("%v: want at least 1s", d.v)
		}
	}
	for _, n := range []struct {
		key string
		v   float64
	}{{"writeBurst", float64(s.WriteBurst)}, {"writesPerMinute", s.WritesPerMinute}, {"eventBurst", float64(s.EventBurst)},
		{"eventsPerMinute", s.EventsPerMinute}, {"maxPendingEventsPerReason", float64(s.MaxPendingEventsPerReason)}} {
		if n.v < 0 {
			return n.key, fmt.Errorf("%v: must be positive", n.v)
		}
	}
	if s.ExecTimeout < 0 {
		return "execTimeout", fmt.Errorf("%v: must not be negative", s.ExecTimeout)
	}
	return "", nil
}

// NVMLSettings tune the GPU checks through NVML on NVIDIA nodes
// (internal/nvidia). They apply again on every reload; XIDs are read from
// kmsg whatever they say.
type NVMLSettings struct {
	Toggle `yaml:",inline"`
	// Interval is how often NVML counters are polled; 0 is DefaultNVMLInterval.
	Interval time.Duration `yaml:"interval,omitempty"`
}

// DefaultNVMLInterval is NVMLSettings.Interval's default.
const DefaultNVMLInterval = time.Minute

// PollInterval is Interval or its default.
func (n NVMLSettings) PollInterval() time.Duration {
	if n.Interval == 0 {
		return DefaultNVMLInterval
	}
	return n.Interval
}
