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
// memory under a burst and costs nothing otherwise. GOMEMLIMIT in the
// environment, the runtime's own setting, wins over the config.
func (d *Daemon) applyMemoryLimit() {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		if !d.memLimitLogged {
			d.log.Info("soft memory limit from GOMEMLIMIT; config memoryLimit ignored", "GOMEMLIMIT", v)
			d.memLimitLogged = true
		}
		return
	}
	n, err := d.cfg.MemoryLimitBytes()
	if err != nil {
		// Load refuses such a config; keep whatever limit is in force.
		return
	}
	limit := n
	if n == 0 {
		limit = math.MaxInt64
	}
	if prev := debug.SetMemoryLimit(limit); prev != limit || !d.memLimitLogged {
		d.log.Info("soft memory limit", "bytes", n, "off", n == 0)
		d.memLimitLogged = true
	}
}

// applyGCPercent sets the garbage collector's target to the config's
// gcPercent (config.DefaultGCPercent when unset), on start and on every
// reload. GOGC in the environment, the runtime's own setting, wins over
// the config, as GOMEMLIMIT does over memoryLimit.
func (d *Daemon) applyGCPercent() {
	if v := os.Getenv("GOGC"); v != "" {
		if !d.gcLogged {
			d.log.Info("garbage collector target from GOGC; config gcPercent ignored", "GOGC", v)
			d.gcLogged = true
		}
		return
	}
	pct, err := d.cfg.GCPercentValue()
	if err != nil {
		// Load refuses such a config; keep whatever target is in force.
		return
	}
	if prev := debug.SetGCPercent(pct); prev != pct || !d.gcLogged {
		d.log.Info("garbage collector target", "gcPercent", pct)
		d.gcLogged = true
	}
}
