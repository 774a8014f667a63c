// Package all registers every probe: importing it is the one place that
// decides which subsystems' probes the daemon, --once and nodehealthctl
// know.
package all

import (
	_ "github.com/nodehealthd/nodehealthd/internal/probe/accel"
	_ "github.com/nodehealthd/nodehealthd/internal/probe/kernel"
	_ "github.com/nodehealthd/nodehealthd/internal/probe/network"
	_ "github.com/nodehealthd/nodehealthd/internal/probe/runtime"
	_ "github.com/nodehealthd/nodehealthd/internal/probe/storage"
)
