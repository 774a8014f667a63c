package daemon

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/state"
)

// TestLiveSectionsArePublished: what a subsystem hands the daemon in
// Options.LiveSections is what nodehealthctl reads from the lock socket.
func TestLiveSectionsArePublished(t *testing.T) {
	h := newHarness(t)
	h.run(func(o *Options) {
		o.LiveSections = map[string]func() any{"gpu": func() any { return map[string]int{"devices": 8} }}
	})
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
