package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/state"
)

const movedRule = `rules:
  - name: Moved
    condition: KernelReady
    reason: Moved
    severity: Fatal
    source: kmsg
    patterns: ['moved rule fired']
`

// config.yaml moving rulesDir moves the watch with it: a rule file added to
// the new directory is live without SIGHUP, whether the directory existed
// when config.yaml named it or was created afterwards.
func TestRulesDirMoveIsFollowed(t *testing.T) {
	for _, exists := range []bool{true, false} {
		t.Run(map[bool]string{true: "existing", false: "created later"}[exists], func(t *testing.T) {
			h := newHarness(t)
			h.rulesDir = "" // from config.yaml, not from the flag
			h.write("config.yaml", "rulesDir: "+filepath.Join(h.root, "rules.d")+"\n")
			h.start()
			defer h.stop()
			moved := filepath.Join(h.root, "elsewhere", "rules")
			if exists {
				if err := os.MkdirAll(moved, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			h.write("config.yaml", "rulesDir: "+moved+"\n")
			waitFor(t, "the reload after the config change", h, func() bool {
				return strings.Contains(h.logs.String(), "rules reloaded")
			})
			time.Sleep(2 * reloadDebounce)
			h.write("elsewhere/rules/moved.yaml", movedRule)
			deadline := time.Now().Add(5 * time.Second)
			for {
				h.send("moved rule fired")
				st, err := state.Read(h.stateDir)
				if err == nil && activeReasons(st) == "Moved/" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the rule in the new rules directory is not live after 5s:\n%s", h.logs.String())
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}
