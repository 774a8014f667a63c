package main

import (
	"flag"
	"os"

	"github.com/nodehealthd/nodehealthd/internal/publish/journald"
	"github.com/nodehealthd/nodehealthd/internal/publish/systemd"
)

func init() {
	register(subsystem{
		name: "systemd",
		flags: func(fs *flag.FlagSet) {
			// Under systemd every finding is a structured journal entry;
			// printing it to stdout as well would log it twice (stdout is
			// the journal too). An explicit -o still wins.
			if journald.UnderJournal() {
				if f := fs.Lookup("o"); f != nil {
					f.DefValue = "none"
					_ = f.Value.Set("none")
				}
			}
		},
		setup: setupSystemd,
	})
}

func setupSystemd(e *env) error {
	if journald.UnderJournal() {
		// The logger already writes structured journal entries (see
		// internal/logging); findings get entries of their own.
		e.opts.Publishers = append(e.opts.Publishers, journald.NewPublisher(e.log))
	}
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
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
	return nil
}
