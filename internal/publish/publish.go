// Package publish defines how results leave the pipeline. Publishers (the
// console, the journal, metrics, systemd status, the cluster) see every
// committed change; they are called after the state file is saved, so what
// they show is never ahead of what a restart would remember.
package publish

import (
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// Update is one committed change.
type Update struct {
	Time    time.Time
	New     []finding.Finding
	Cleared []state.Cleared
	// Conditions are all monitored conditions after the change.
	Conditions        map[string]condition.Condition
	ConditionsChanged bool
	// State is the committed state. Publishers read it during Publish and
	// must not keep or modify it.
	State *state.State
}

// Publisher receives updates in the pipeline goroutine. Publish must return
// quickly: anything slow (network) belongs on the publisher's own goroutine,
// because detection never waits for a publisher.
type Publisher interface {
	Publish(Update)
}

// Func adapts a function to Publisher.
type Func func(Update)

// Publish calls f.
func (f Func) Publish(u Update) { f(u) }
