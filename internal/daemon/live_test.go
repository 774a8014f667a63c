package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/source"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// TestLiveSectionsArePublished: what a subsystem hands the daemon in
// Options.LiveSections is what nodehealthctl reads from the lock socket.
func TestLiveSectionsArePublished(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done, h.logs = cancel, make(chan error, 1), &syncBuffer{}
	opts := Options{Root: h.root, StateDir: h.stateDir, ConfigPath: h.config, RulesDir: h.rulesDir,
		Logger:       slog.New(slog.NewTextHandler(h.logs, nil)),
		NewSources:   func(SourceContext) []source.Source { return []source.Source{h.feed} },
		LiveSections: map[string]func() any{"gpu": func() any { return map[string]int{"devices": 8} }}}
	go func() { h.done <- Run(ctx, opts) }()
	h.waitState(func(st *state.State) bool { return true })
	defer h.stop()

	l, err := state.QueryLive(h.stateDir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]int
	if err := json.Unmarshal(l.Sections["gpu"], &got); err != nil || got["devices"] != 8 {
		t.Fatalf("gpu section %s (%v)", l.Sections["gpu"], err)
	}
}
