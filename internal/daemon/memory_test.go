package daemon

import (
	"runtime/debug"
	"runtime/metrics"
	"testing"

	"github.com/nodehealthd/nodehealthd/internal/config"
)

func TestGCPercentFromConfig(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	t.Setenv("GOGC", "")
	// Read through runtime/metrics: SetGCPercent(-1) and back would write
	// too, and could undo a setting the daemon makes in between.
	gc := func() int {
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		return int(s[0].Value.Uint64())
	}

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
