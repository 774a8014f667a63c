package daemon

import (
	"runtime/debug"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/config"
)

func TestGCPercentFromConfig(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	t.Setenv("GOGC", "")
	gc := func() int { v := debug.SetGCPercent(-1); debug.SetGCPercent(v); return v }

	h := newHarness(t)
	h.write("config.yaml", "gcPercent: 70\n")
	h.start()
	if got := gc(); got != 70 {
		t.Fatalf("GC target %d after start, want 70", got)
	}
	h.write("config.yaml", "")
	waitFor(t, "default GC target on reload", h, func() bool { return gc() == config.DefaultGCPercent })
	h.stop()

	debug.SetGCPercent(100)
	t.Setenv("GOGC", "100")
	h = newHarness(t)
	h.write("config.yaml", "gcPercent: 70\n")
	h.start()
	defer h.stop()
	if got := gc(); got != 100 {
		t.Fatalf("GC target %d with GOGC set, want it left at 100", got)
	}
}
