package daemon

import (
	"math"
	"os"
	"runtime/debug"
)

// applyMemoryLimit sets the Go runtime's soft memory limit to the config's
// memoryLimit (config.DefaultMemoryLimit when unset), on start and on every
// reload. Near the limit the garbage collector runs more often rather than
// let the heap grow; it never refuses memory, so the limit trades CPU for
// memory under a burst and costs nothing otherwise.
func (d *Daemon) applyMemoryLimit() {
	d.applyRuntimeSetting("GOMEMLIMIT", "memoryLimit", &d.memLimitLogged, func() (int64, any, error) {
		n, err := d.cfg.MemoryLimitBytes()
		if n == 0 {
			return math.MaxInt64, "off", err
		}
		return n, n, err
	}, debug.SetMemoryLimit)
}

// applyGCPercent sets the garbage collector's target to the config's
// gcPercent (config.DefaultGCPercent when unset), on start and on every
// reload.
func (d *Daemon) applyGCPercent() {
	d.applyRuntimeSetting("GOGC", "gcPercent", &d.gcLogged, func() (int64, any, error) {
		n, err := d.cfg.GCPercentValue()
		return int64(n), n, err
	}, func(n int64) int64 { return int64(debug.SetGCPercent(int(n))) })
}

// applyRuntimeSetting applies a Go runtime setting from the config. The
// runtime's own environment variable, set in the unit by an operator, wins
// over the config. A value the config cannot give leaves the one in force:
// Load refuses such a config, so it is never installed. value returns the
// runtime's value and the one to log.
func (d *Daemon) applyRuntimeSetting(env, key string, logged *bool, value func() (int64, any, error), set func(int64) int64) {
	if v := os.Getenv(env); v != "" {
		if !*logged {
			d.log.Info("Go runtime setting from the environment; config "+key+" ignored", env, v)
			*logged = true
		}
		return
	}
	n, shown, err := value()
	if err != nil {
		return
	}
	if prev := set(n); prev != n || !*logged {
		d.log.Info("Go runtime setting", key, shown)
		*logged = true
	}
}
