// Package local holds end-to-end tests of the daemon in local mode on this
// host: the real binaries, the real /dev/kmsg, the real state file.
package local

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/e2e/internal/daemontest"
	"github.com/nodehealthd/nodehealthd/e2e/internal/testbin"
)

func token(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestKmsgRecordReachesStatusWithinASecond injects a record into the host's
// real /dev/kmsg and requires `nodehealthctl status` to show the finding
// within a second.
func TestKmsgRecordReachesStatusWithinASecond(t *testing.T) {
	daemontest.RequireKmsg(t)
	bin := testbin.Build(t)
	work := t.TempDir()
	rulesDir := filepath.Join(work, "rules.d")
	tok := token(t)
	// An operator rule keyed on a unique token: the host ring is shared,
	// so a catalogue pattern could be matched by someone else's record.
	rule := `rules:
  - name: E2EToken
    condition: KernelReady
    reason: E2EToken
    severity: Fatal
    source: kmsg
    patterns: ['nodehealthd-e2e-` + tok + ` (?P<what>\S+)']
    message: 'token seen: ${what}'
`
	daemontest.Write(t, filepath.Join(rulesDir, "e2e.yaml"), rule)
	stateDir := filepath.Join(work, "state")
	d := daemontest.Start(t, []string{"--state-dir", stateDir,
		"--rules-dir", rulesDir, "--config", testbin.Config(t, filepath.Join(work, "conf"), ""), "-o", "none"}, daemontest.Options{})
	// The daemon is ready once it has written its first state file.
	d.Eventually(t, 10*time.Second, "the first state file", func() (bool, string) {
		_, err := os.Stat(filepath.Join(stateDir, "state.json"))
		return err == nil, fmt.Sprint(err)
	})

	injected := daemontest.WriteKmsg(t, "nodehealthd-e2e-"+tok+" injected")

	// The second counts from the write.
	daemontest.Eventually(t, time.Second-time.Since(injected), "finding in nodehealthctl status after the kmsg write", func() (bool, string) {
		out, err := exec.Command(filepath.Join(bin, "nodehealthctl"), "status", "--state-dir", stateDir, "-o", "json").Output()
		if err != nil {
			return false, fmt.Sprintf("status: %v", err)
		}
		var st struct {
			Active []struct {
				Reason, Message string
			} `json:"active"`
			Conditions []struct {
				Type, Status, Reason string
			} `json:"conditions"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("status -o json: %v\n%s", err, out)
		}
		found := false
		for _, a := range st.Active {
			found = found || (a.Reason == "E2EToken" && strings.Contains(a.Message, "token seen: injected"))
		}
		kernelFalse := false
		for _, c := range st.Conditions {
			kernelFalse = kernelFalse || (c.Type == "KernelReady" && c.Status == "False" && c.Reason == "E2EToken")
		}
		return found && kernelFalse, fmt.Sprintf("finding shown %v, KernelReady False %v", found, kernelFalse)
	})
	seen := time.Since(injected)
	t.Logf("kmsg record → state file → nodehealthctl status in %v", seen.Round(time.Millisecond))
}
