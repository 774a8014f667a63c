package daemon

import (
	"github.com/nodehealthd/nodehealthd/internal/source"
	"github.com/nodehealthd/nodehealthd/internal/source/journal"
	"github.com/nodehealthd/nodehealthd/internal/source/kmsg"
	"github.com/nodehealthd/nodehealthd/internal/source/tail"
)

// DefaultSources builds the real log sources the rule set needs: a source
// no rule reads is not started.
func DefaultSources(sc SourceContext) []source.Source {
	var out []source.Source
	srcCfg := sc.Config.Sources
	if sc.Inputs.Kmsg && srcCfg.Kmsg.On() {
		out = append(out, kmsg.New(kmsg.Config{Root: sc.Root, Device: sc.KmsgDevice, Facilities: srcCfg.Kmsg.Facilities, BootID: sc.BootID, BootTime: sc.BootTime}))
	}
	if len(sc.Inputs.Identifiers)+len(sc.Inputs.Units) > 0 && srcCfg.Journal.On() {
		out = append(out, journal.New(journal.Config{Root: sc.Root, Identifiers: sc.Inputs.Identifiers, Units: sc.Inputs.Units, BootTime: sc.BootTime, Logger: sc.Logger,
			PollInterval: srcCfg.Journal.PollInterval}))
	}
	if len(sc.Inputs.Paths) > 0 && srcCfg.Files.On() {
		t, err := tail.New(tail.Config{Root: sc.Root, Paths: sc.Inputs.Paths, NewFilesFromStart: sc.FirstStart, Log: sc.Logger,
			PollInterval: srcCfg.Files.PollInterval, RescanInterval: srcCfg.Files.RescanInterval})
		if err != nil {
			// Rule validation already checked the paths; this is a bug.
			sc.Logger.Error("cannot tail files", "err", err)
		} else {
			out = append(out, t)
		}
	}
	return out
}
