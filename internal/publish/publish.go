// Package publish defines how results leave the pipeline. Publishers (the
// console, the journal, metrics, systemd status, the cluster) see every
// committed change; they are called after the state file is saved, so what
// they show is never ahead of what a restart would remember — except while
// the state file cannot be written (Update.Unsaved): then they are called
// anyway, because a node that cannot write /var is exactly one whose
// findings must get out.
package publish

import (
	"context"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// Update is one committed change.
type Update struct {
	Time    time.Time
	New     []finding.Finding
	Cleared []state.Cleared
	// Repeats counts occurrences folded into findings committed before;
	// a new finding stands for Count occurrences (state.Changes).
	Repeats map[state.Kind]int
	// Conditions are all monitored conditions after the change.
	Conditions        map[string]condition.Condition
	ConditionsChanged bool
	// State is the committed state. Publishers read it during Publish and
	// must not keep or modify it.
	State *state.State
	// Stats describes the work this commit covers.
	Stats Stats
	// Unsaved is set while the state file cannot be written: the update
	// was not committed to disk, and a crash now would forget it.
	Unsaved *state.SaveFailure
}

// Stats are pipeline measurements for metrics.
type Stats struct {
	// Records counts records processed per batch source name.
	Records map[string]int
	// Lost counts records lost per batch source name since the last commit.
	Lost map[string]uint64
	// Truncated counts records cut to source.MaxMessageBytes per batch
	// source name since the last commit.
	Truncated map[string]uint64
	// SourceTime is the time of the newest record per batch source name,
	// for lag.
	SourceTime map[string]time.Time
	// RuleTime is the time spent in the rule engine.
	RuleTime time.Duration
	// SaveTime is how long writing the state file took.
	SaveTime time.Duration
	// SaveFailures counts failed attempts to write the state file.
	SaveFailures int
}

// Feedback lets a publisher report back to the pipeline, which applies it
// at its next commit (the pipeline goroutine owns the state).
type Feedback interface {
	// Ack marks outbox records as delivered.
	Ack(ids ...uint64)
	// SetClusterLink records the state of the API server link.
	SetClusterLink(state.ClusterLink)
	// SetSentEvents records the cluster publisher's memory of the events
	// it sent (State.SentEvents). Set before the Ack of the records they
	// deliver, it is committed with them.
	SetSentEvents([]state.SentEvent)
}

// Starter is implemented by publishers that run their own goroutines; the
// daemon calls Start once before the first Publish.
type Starter interface {
	Start(ctx context.Context, fb Feedback)
}

// Publisher receives updates in the pipeline goroutine. Publish must return
// quickly: anything slow (network) belongs on the publisher's own goroutine,
// because detection never waits for a publisher.
type Publisher interface {
	Publish(Update)
}

// Replayer is implemented by the log publishers (journal, console): at
// start they get the findings and clears that were committed but that a
// crash kept them from writing, so that their output is at-least-once.
// The others need no replay: metrics are rebuilt from the state and the
// cluster publisher delivers from the state's outbox.
type Replayer interface {
	Replay(findings []finding.Finding, cleared []state.Cleared)
}

// Reconfigurable is implemented by publishers with settings in
// config.yaml: the pipeline hands them each configuration it installs, at
// start and after every reload, in the pipeline goroutine (return quickly).
type Reconfigurable interface {
	Reconfigure(cfg *config.Config)
}

// Ticker is implemented by publishers that must know the pipeline is alive
// while nothing changes (readiness): nothing is published then. Tick runs
// in the pipeline goroutine on every housekeeping tick and must return
// quickly.
type Ticker interface {
	Tick(now time.Time)
}

// Func adapts a function to Publisher.
type Func func(Update)

// Publish calls f.
func (f Func) Publish(u Update) { f(u) }
