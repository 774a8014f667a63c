package main

import (
	"flag"
	"log/slog"
	"os"

	"github.com/nodehealthd/nodehealthd/internal/journald"
	"github.com/nodehealthd/nodehealthd/internal/logging"
	"github.com/nodehealthd/nodehealthd/internal/systemd"
)

// systemdFlags is the daemon's flag set, kept to read -log-level at setup.
var systemdFlags *flag.FlagSet

func init() {
	register(subsystem{
		name: "systemd",
		flags: func(fs *flag.FlagSet) {
			systemdFlags = fs
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
		level := slog.LevelInfo
		if f := systemdFlags.Lookup("log-level"); f != nil {
			if l, err := logging.ParseLevel(f.Value.String()); err == nil {
				level = l
			}
		}
		// Replace the logger in place: main, the daemon and subsystems set
		// up earlier hold this pointer. (Loggers those subsystems derived
		// with With still write text to stderr, which systemd also puts in
		// the journal, under the same identifier.)
		if _, done := e.log.Handler().(*journald.Handler); !done {
			*e.log = *slog.New(journald.NewHandler(level))
		}
		e.opts.Publishers = append(e.opts.Publishers, journald.NewPublisher(e.log))
	}
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	n := systemd.New(e.log)
	e.log.Debug("systemd notification enabled", "watchdog", n.Watchdog())
	e.opts.Publishers = append(e.opts.Publishers, n)
	return nil
}
