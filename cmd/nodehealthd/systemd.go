package main

import (
	"os"

	"github.com/nodehealthd/nodehealthd/internal/publish/journald"
	"github.com/nodehealthd/nodehealthd/internal/publish/systemd"
)

// setupSystemd: under systemd, findings become journal entries of their
// own, and the daemon reports readiness, its STATUS= line and watchdog
// pings.
func (e *env) setupSystemd() {
	if journald.UnderJournal() {
		// The logger already writes structured journal entries (see
		// internal/logging); findings get entries of their own.
		e.opts.Publishers = append(e.opts.Publishers, journald.NewPublisher(e.log))
	}
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	n := systemd.New(e.log)
	if wd := n.Watchdog(); wd > 0 {
		// The notifier pings on the pipeline's ticks, and only while they
		// come within half the watchdog interval: tick three times per
		// interval, whatever config.yaml says.
		e.opts.HousekeepingInterval = wd / 3
	}
	e.log.Debug("systemd notification enabled", "watchdog", n.Watchdog())
	e.opts.Publishers = append(e.opts.Publishers, n)
}
