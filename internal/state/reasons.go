package state

import (
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// The reason the daemon raises when it cannot save the state file. It is
// declared here, with the file, so that every program validating
// config.yaml knows it without linking the daemon.
const (
	// ReasonNotPersisted: the state file could not be written.
	ReasonNotPersisted = "StateNotPersisted"
	// FindingSource is the source and detector of findings about the
	// state file.
	FindingSource = "state"
)

// NotPersisted is ReasonNotPersisted's declaration.
var NotPersisted = reason.Declare(reason.Reason{
	Name:      ReasonNotPersisted,
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
