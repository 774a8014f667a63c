package metrics_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/publish/metrics"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

const testRules = `rules:
  - name: TestKmsgWarning
    condition: KernelReady
    reason: TestKmsgWarning
    severity: Warning
    source: kmsg
    patterns: ['^nodehealthd-test: warning']
  - name: TestDiskGone
    condition: StorageReady
    reason: TestDiskGone
    severity: Fatal
    source: file
    paths: [/var/log/nodehealthd-test.log]
    patterns: ['disk (?P<dev>\w+) is gone']
    key: '${dev}'
    message: 'disk ${dev} is gone'
`

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonMetrics runs the real pipeline (kmsg and file sources, the
// rule engine, the state file) with the metrics publisher and scrapes it
// over HTTP while findings are injected and cleared.
func TestDaemonMetrics(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	writeFile(t, filepath.Join(root, "proc/sys/kernel/random/boot_id"), "3b7e0c4e-0000-4000-8000-000000000001\n")
	writeFile(t, filepath.Join(root, "proc/stat"), fmt.Sprintf("cpu 1 2 3\nbtime %d\n", time.Now().Add(-time.Hour).Unix()))
	// A regular file in place of /dev/kmsg is read once as text.
	writeFile(t, filepath.Join(root, "dev/kmsg"),
		"6,1,1000000,-;nodehealthd-test: warning one\n6,2,2000000,-;unrelated\n6,3,3000000,-;nodehealthd-test: warning two\n")
	rulesDir := filepath.Join(dir, "rules.d")
	writeFile(t, filepath.Join(rulesDir, "test.yaml"), testRules)
	stateDir := filepath.Join(dir, "state")

	m := metrics.New(metrics.Options{Version: "test", StaleAfter: 1500 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { metrics.Serve(ctx, ln, m.Handler(false, discardLog()), discardLog()); close(served) }()
	base := "http://" + ln.Addr().String()
	if code, _ := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the daemon ran = %d, want 503", code)
	}

	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{
			Root: root, StateDir: stateDir, ConfigPath: filepath.Join(dir, "config.yaml"), RulesDir: rulesDir,
			Logger: discardLog(), Publishers: []publish.Publisher{m},
			// Tick faster than StaleAfter, as the daemon's default 5s tick
			// is faster than the default 2-minute readiness window.
			HousekeepingInterval: 300 * time.Millisecond,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon.Run: %v", err)
		}
		<-served
	})

	s := waitFor(t, base, "both kmsg warnings counted", func(s series) bool {
		return s[`nodehealthd_findings_total{condition="KernelReady",reason="TestKmsgWarning",severity="Warning"}`] == 2
	})
	for _, k := range []string{
		`nodehealthd_condition{condition="StorageReady",status="True"}`,
		`nodehealthd_condition{condition="KernelReady",status="True"}`,
		`nodehealthd_build_info{goversion="` + goVersion() + `",version="test"}`,
	} {
		if s[k] != 1 {
			t.Errorf("%s = %v, want 1", k, s[k])
		}
	}
	if s[`nodehealthd_source_records_total{source="kmsg"}`] != 3 {
		t.Errorf("kmsg records = %v, want 3", s[`nodehealthd_source_records_total{source="kmsg"}`])
	}
	if s[`nodehealthd_source_sequence_number{source="kmsg"}`] != 3 {
		t.Errorf("kmsg sequence = %v, want 3", s[`nodehealthd_source_sequence_number{source="kmsg"}`])
	}
	// Records are stamped boot time + usec, an hour ago.
	if lag := s[`nodehealthd_source_lag_seconds{source="kmsg"}`]; lag < 3500 || lag > 3700 {
		t.Errorf("kmsg lag = %v, want about 3600 s", lag)
	}
	for _, f := range []string{"nodehealthd_state_write_duration_seconds_count", "nodehealthd_state_commits_total",
		"nodehealthd_rule_evaluation_seconds_total", "nodehealthd_last_commit_timestamp_seconds", "nodehealthd_outbox_records"} {
		if !s.family(f) {
			t.Errorf("series %s missing", f)
		}
	}
	if s.family("nodehealthd_active_findings") {
		t.Errorf("active findings before any Fatal one: %v", keys(s, "nodehealthd_active_findings"))
	}
	commits := s["nodehealthd_state_commits_total"]

	// Inject a Fatal finding through a file the daemon tails.
	writeFile(t, filepath.Join(root, "var/log/nodehealthd-test.log"), "boot ok\nkernel: disk xvdb is gone\n")
	s = waitFor(t, base, "StorageReady False after the injected line", func(s series) bool {
		return s[`nodehealthd_condition{condition="StorageReady",status="False"}`] == 1
	})
	for k, v := range map[string]float64{
		`nodehealthd_condition{condition="StorageReady",status="True"}`:                               0,
		`nodehealthd_active_findings{condition="StorageReady",reason="TestDiskGone"}`:                 1,
		`nodehealthd_findings_total{condition="StorageReady",reason="TestDiskGone",severity="Fatal"}`: 1,
		`nodehealthd_source_records_total{source="file:/var/log/nodehealthd-test.log"}`:               2,
	} {
		if s[k] != v {
			t.Errorf("after injection: %s = %v, want %v", k, s[k], v)
		}
	}
	if off := s[`nodehealthd_source_offset_bytes{source="file:/var/log/nodehealthd-test.log"}`]; off != float64(len("boot ok\nkernel: disk xvdb is gone\n")) {
		t.Errorf("file offset = %v", off)
	}
	if s["nodehealthd_state_commits_total"] <= commits {
		t.Errorf("commits did not move: %v then %v", commits, s["nodehealthd_state_commits_total"])
	}

	// An operator clear, as nodehealthctl submits it, ends it again.
	if _, err := state.SubmitRequest(stateDir, state.Request{Clear: &finding.Clear{Reason: "TestDiskGone", AllKeys: true, By: "operator"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, base, "StorageReady True after the operator clear", func(s series) bool {
		return s[`nodehealthd_condition{condition="StorageReady",status="True"}`] == 1
	})
	if v := s[`nodehealthd_findings_cleared_total{by="operator",condition="StorageReady",reason="TestDiskGone"}`]; v != 1 {
		t.Errorf("cleared_total = %v, want 1", v)
	}
	if s.family("nodehealthd_active_findings") {
		t.Errorf("active findings after the clear: %v", keys(s, "nodehealthd_active_findings"))
	}

	// Nothing changes from here on, so nothing is committed: readiness
	// rests on the pipeline's housekeeping ticks.
	time.Sleep(2 * time.Second)
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz of an idle daemon = %d %q, want 200", code, body)
	}
}

// waitFor scrapes until ok holds or 10 s pass.
func waitFor(t *testing.T, base, what string, ok func(series) bool) series {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := scrape(t, base+"/metrics")
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; nodehealthd series:\n%v", what, keys(s, "nodehealthd_"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
