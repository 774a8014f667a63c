// Package local holds end-to-end tests of the daemon in local mode on this
// host: the real binaries, the real /dev/kmsg, the real state file.
package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	if os.Geteuid() != 0 {
		t.Skip("needs root to read and write /dev/kmsg")
	}
	if f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err != nil {
		t.Skipf("/dev/kmsg not writable: %v", err)
	} else {
		f.Close()
	}
	bin := testbin.Build(t)
	work := t.TempDir()
	rulesDir := filepath.Join(work, "rules.d")
	if err := os.MkdirAll(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
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
	if err := os.WriteFile(filepath.Join(rulesDir, "e2e.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(work, "state")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	daemon := exec.CommandContext(ctx, filepath.Join(bin, "nodehealthd"), "--state-dir", stateDir,
		"--rules-dir", rulesDir, "--config", testbin.Config(t, filepath.Join(work, "conf"), ""), "-o", "none")
	var logs bytes.Buffer
	daemon.Stderr = &logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = daemon.Wait()
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	}()
	// The daemon is ready once it has written its first state file.
	waitFor(t, 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(stateDir, "state.json"))
		return err == nil
	})

	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("<3>nodehealthd-e2e-" + tok + " injected\n")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	injected := time.Now()

	var seen time.Duration
	deadline := injected.Add(time.Second)
	for {
		out, err := exec.Command(filepath.Join(bin, "nodehealthctl"), "status", "--state-dir", stateDir, "-o", "json").Output()
		if err == nil {
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
			if found && kernelFalse {
				seen = time.Since(injected)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("finding not in nodehealthctl status within 1s of the kmsg write")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("kmsg record → state file → nodehealthctl status in %v", seen.Round(time.Millisecond))
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
