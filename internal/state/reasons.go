package state

import (
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// Findings about the state file itself, which the daemon raises when it
// cannot save it. They are described here, with the file, so that every
// program validating config.yaml knows them without linking the daemon.
const (
	// ReasonNotPersisted: the state file could not be written.
	ReasonNotPersisted = "StateNotPersisted"
	// FindingSource is their source and detector.
	FindingSource = "state"
)

func init() {
	detector.Describe(detector.ReasonInfo{
		Reason:    ReasonNotPersisted,
		Condition: finding.StorageReady,
		Severity:  finding.Warning,
		Detector:  FindingSource,
		Description: "nodehealthd could not write its state file (for example: no space left on /var). " +
			"It keeps detecting and publishing from memory and retries with backoff; a restart meanwhile " +
			"forgets what was detected since the last successful write. A read-only filesystem is reported " +
			"as FilesystemReadOnly instead.",
		Action:   "Free space on the filesystem of the state directory (df -h /var/lib/nodehealthd) or fix the error the message names.",
		Recovery: "An event, once per episode; the journal and nodehealthctl status say when the file is written again.",
	})
}
