package metrics_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/outqueue"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/publish/cluster"
	"github.com/nodehealthd/nodehealthd/internal/publish/metrics"
	"github.com/nodehealthd/nodehealthd/internal/source"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fullUpdate touches every state-derived series.
func fullUpdate(now time.Time) publish.Update {
	disk := finding.Finding{ID: 1, Condition: finding.StorageReady, Reason: "XFSError", Severity: finding.Fatal, Key: "nvme1n1", Detected: now}
	// A coalesced Warning: five identical ones.
	warn := finding.Finding{ID: 2, Condition: finding.KernelReady, Reason: "SoftLockup", Severity: finding.Warning, Detected: now, Count: 5}
	old := finding.Finding{ID: 0, Condition: finding.NetworkingReady, Reason: "IPAMDNotReady", Severity: finding.Fatal}
	// An XID 48 that survived two reboots, escalated.
	gpu := finding.Finding{ID: 3, Condition: finding.AcceleratedHardwareReady, Reason: "NvidiaXID140Error", Severity: finding.Fatal, Key: "0000:3b:00/48",
		Recurrence: &finding.Recurrence{Reason: "NvidiaXID48Error", Reboots: 2, Within: 24 * time.Hour, Escalated: true}}
	st := &state.State{
		Positions: map[string]source.Position{
			"kmsg":                {BootID: "b", Seq: 4711},
			"journal":             {Cursor: "s=abc"},
			"file:/var/log/x.log": {Inode: 12, Offset: 3456},
		},
		Active:        []finding.Finding{disk, gpu},
		Outbox:        []state.Outbound{{ID: 2, Finding: warn}},
		OutboxDropped: 3,
		Cluster:       &state.ClusterLink{Node: "n", Connected: true, PendingWrites: 2},
	}
	return publish.Update{
		Time:    now,
		New:     []finding.Finding{disk, warn},
		Cleared: []state.Cleared{{Finding: old, At: now, By: "expiry"}},
		// The active disk finding seen three times more.
		Repeats: map[state.Kind]int{state.KindOf(&disk): 3},
		Conditions: map[string]condition.Condition{
			finding.StorageReady: {Type: finding.StorageReady, Status: condition.False, Reason: "XFSError", LastTransitionTime: now},
			finding.KernelReady:  {Type: finding.KernelReady, Status: condition.True, LastTransitionTime: t0},
		},
		State: st,
		Stats: publish.Stats{
			Records:    map[string]int{"kmsg": 10, "journal": 5},
			Lost:       map[string]uint64{"kmsg": 7},
			Truncated:  map[string]uint64{"file:/var/log/x.log": 2},
			SourceTime: map[string]time.Time{"kmsg": now.Add(-1500 * time.Millisecond)},
			RuleTime:   250 * time.Millisecond,
			SaveTime:   3 * time.Millisecond,
		},
	}
}

func TestPublishSeries(t *testing.T) {
	clk := &clock{t: t0}
	m := metrics.New(metrics.Options{Version: "1.2.3", Now: clk.now})
	srv := httptest.NewServer(m.Handler(false, discardLog()))
	defer srv.Close()

	before := scrape(t, srv.URL+"/metrics")
	if got := before[`nodehealthd_build_info{goversion="`+goVersion()+`",version="1.2.3"}`]; got != 1 {
		t.Errorf("build_info = %v; series: %v", got, keys(before, "nodehealthd_build_info"))
	}
	if before.family("nodehealthd_condition") {
		t.Error("condition series before the first commit: nothing is known yet")
	}

	m.Publish(fullUpdate(t0))
	m.ObserveProbe("pidmax", 20*time.Millisecond, nil)
	m.ObserveProbe("pidmax", time.Second, errors.New("timeout"))
	m.Write(cluster.WriteEvent, nil)
	m.Write(cluster.WriteEvent, errors.New("forbidden"))
	m.Write(cluster.WriteNodeStatus, nil)
	m.EventsDropped(cluster.DropRateLimited, 1)
	s := scrape(t, srv.URL+"/metrics")

	want := map[string]float64{
		`nodehealthd_condition{condition="StorageReady",status="False"}`:                                     1,
		`nodehealthd_condition{condition="StorageReady",status="True"}`:                                      0,
		`nodehealthd_condition{condition="KernelReady",status="True"}`:                                       1,
		`nodehealthd_condition_last_transition_timestamp_seconds{condition="KernelReady"}`:                   float64(t0.Unix()),
		`nodehealthd_findings_total{condition="StorageReady",reason="XFSError",severity="Fatal"}`:            1,
		`nodehealthd_findings_total{condition="KernelReady",reason="SoftLockup",severity="Warning"}`:         1,
		`nodehealthd_finding_repeats_total{condition="KernelReady",reason="SoftLockup",severity="Warning"}`:  4,
		`nodehealthd_finding_repeats_total{condition="StorageReady",reason="XFSError",severity="Fatal"}`:     3,
		`nodehealthd_findings_cleared_total{by="expiry",condition="NetworkingReady",reason="IPAMDNotReady"}`: 1,
		`nodehealthd_active_findings{condition="StorageReady",reason="XFSError"}`:                            1,
		`nodehealthd_reason_recurrences{condition="AcceleratedHardwareReady",reason="NvidiaXID48Error"}`:     2,
		`nodehealthd_source_records_total{source="kmsg"}`:                                                    10,
		`nodehealthd_source_records_total{source="journal"}`:                                                 5,
		`nodehealthd_source_records_lost_total{source="kmsg"}`:                                               7,
		`nodehealthd_source_records_truncated_total{source="file:/var/log/x.log"}`:                           2,
		`nodehealthd_source_lag_seconds{source="kmsg"}`:                                                      1.5,
		`nodehealthd_source_sequence_number{source="kmsg"}`:                                                  4711,
		`nodehealthd_source_offset_bytes{source="file:/var/log/x.log"}`:                                      3456,
		`nodehealthd_rule_evaluation_seconds_total`:                                                          0.25,
		`nodehealthd_state_write_duration_seconds_count`:                                                     1,
		`nodehealthd_state_commits_total`:                                                                    1,
		`nodehealthd_last_commit_timestamp_seconds`:                                                          float64(t0.Unix()),
		`nodehealthd_outbox_records`:                                                                         1,
		`nodehealthd_api_pending_writes`:                                                                     2,
		`nodehealthd_api_connected`:                                                                          1,
		`nodehealthd_probe_duration_seconds_count{probe="pidmax"}`:                                           2,
		`nodehealthd_probe_failures_total{probe="pidmax"}`:                                                   1,
		`nodehealthd_api_writes_total{kind="event"}`:                                                         2,
		`nodehealthd_api_write_errors_total{kind="event"}`:                                                   1,
		`nodehealthd_api_writes_total{kind="node_status"}`:                                                   1,
		`nodehealthd_api_write_errors_total{kind="node_status"}`:                                             0,
		`nodehealthd_events_emitted_total`:                                                                   1,
		`nodehealthd_events_dropped_total{reason="outbox_full"}`:                                             3,
		`nodehealthd_events_dropped_total{reason="rate_limited"}`:                                            1,
	}
	for k, v := range want {
		got, ok := s[k]
		if !ok {
			t.Errorf("missing series %s", k)
			continue
		}
		if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	if _, ok := s[`nodehealthd_source_lag_seconds{source="journal"}`]; ok {
		t.Error("lag reported for a source that delivered no record time")
	}

	// A second commit without the finding and with more drops: gauges follow
	// the state, counters only grow, and the outbox total is not re-counted.
	u := fullUpdate(t0.Add(time.Minute))
	u.New, u.Cleared = nil, nil
	u.State.Active = nil
	u.State.OutboxDropped = 5
	u.Stats.SourceTime = nil
	u.Conditions[finding.StorageReady] = condition.Condition{Type: finding.StorageReady, Status: condition.True, LastTransitionTime: t0.Add(time.Minute)}
	m.Publish(u)
	s = scrape(t, srv.URL+"/metrics")
	for k, v := range map[string]float64{
		`nodehealthd_condition{condition="StorageReady",status="False"}`:                          0,
		`nodehealthd_condition{condition="StorageReady",status="True"}`:                           1,
		`nodehealthd_findings_total{condition="StorageReady",reason="XFSError",severity="Fatal"}`: 1,
		`nodehealthd_events_dropped_total{reason="outbox_full"}`:                                  5,
		`nodehealthd_source_records_total{source="kmsg"}`:                                         20,
		`nodehealthd_source_lag_seconds{source="kmsg"}`:                                           1.5,
		`nodehealthd_state_commits_total`:                                                         2,
	} {
		if s[k] != v {
			t.Errorf("after second commit: %s = %v, want %v", k, s[k], v)
		}
	}
	if s.family("nodehealthd_active_findings") {
		t.Errorf("active_findings still reported after the finding ended: %v", keys(s, "nodehealthd_active_findings"))
	}
	if s.family("nodehealthd_reason_recurrences") {
		t.Errorf("reason_recurrences still reported after the finding ended: %v", keys(s, "nodehealthd_reason_recurrences"))
	}
}

func TestReadiness(t *testing.T) {
	clk := &clock{t: t0}
	m := metrics.New(metrics.Options{Now: clk.now, StaleAfter: time.Minute})
	srv := httptest.NewServer(m.Handler(false, discardLog()))
	defer srv.Close()

	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d before any commit, want 200: liveness is the process, not the pipeline", code)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no state committed") {
		t.Errorf("/readyz before the first commit = %d %q, want 503", code, body)
	}
	m.Publish(publish.Update{Time: t0})
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after a commit = %d %q, want 200", code, body)
	}
	clk.set(t0.Add(90 * time.Second))
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "1m30s") {
		t.Errorf("/readyz 90s after the last commit = %d %q, want 503 naming the age", code, body)
	}
	m.Tick(t0.Add(80 * time.Second))
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after a tick = %d %q, want 200: an idle pipeline that ticks is alive", code, body)
	}
	// A publisher that cannot authenticate leaves the cluster blind.
	link := &state.ClusterLink{Node: "n", Unauthenticated: true, LastError: "write conditions: exec credential plugin aws: timed out after 30s; killed"}
	m.Publish(publish.Update{Time: t0.Add(80 * time.Second), State: &state.State{Cluster: link}})
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "cannot authenticate: "+link.LastError) {
		t.Errorf("/readyz while the cluster publisher cannot authenticate = %d %q, want 503 naming the error", code, body)
	}
	link.Unauthenticated, link.LastError, link.Connected = false, "", true
	m.Publish(publish.Update{Time: t0.Add(80 * time.Second), State: &state.State{Cluster: link}})
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz once the publisher authenticates = %d %q, want 200", code, body)
	}
	if code, _ := get(t, srv.URL+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ = %d without pprof, want 404", code)
	}
	// Only a binary built with the profiler serves it (go test -tags pprof).
	want := http.StatusNotFound
	if metrics.Profiler {
		want = http.StatusOK
	}
	withPprof := httptest.NewServer(m.Handler(true, discardLog()))
	defer withPprof.Close()
	if code, _ := get(t, withPprof.URL+"/debug/pprof/"); code != want {
		t.Errorf("/debug/pprof/ = %d with pprof (profiler built: %v), want %d", code, metrics.Profiler, want)
	}
}

// A daemon that cannot write its state file is degraded: /readyz says so
// and the failed writes are counted, until a commit is saved again.
func TestReadinessWhileStateNotPersisted(t *testing.T) {
	clk := &clock{t: t0}
	m := metrics.New(metrics.Options{Now: clk.now, StaleAfter: time.Minute})
	srv := httptest.NewServer(m.Handler(false, discardLog()))
	defer srv.Close()
	ep := &state.SaveFailure{Since: t0, Err: "write state: read-only file system", Failures: 2}
	m.Publish(publish.Update{Time: t0, Unsaved: ep, Stats: publish.Stats{SaveFailures: 2}})
	m.Publish(publish.Update{Time: t0, Unsaved: ep, Stats: publish.Stats{SaveFailures: 1}})
	code, body := get(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "degraded: state not persisted since 2026-03-01T12:00:00Z") || !strings.Contains(body, "read-only file system") {
		t.Errorf("/readyz while unsaved = %d %q, want 503 degraded", code, body)
	}
	s := scrape(t, srv.URL+"/metrics")
	if got := s["nodehealthd_state_save_failures_total"]; got != 3 {
		t.Errorf("nodehealthd_state_save_failures_total = %v, want 3", got)
	}
	if got := s["nodehealthd_state_commits_total"]; got != 0 {
		t.Errorf("commits counted while nothing was saved: %v", got)
	}
	m.Publish(publish.Update{Time: t0})
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz once saved again = %d %q, want 200", code, body)
	}
}

// TestMetricsDocumented keeps docs/metrics.md complete: every nodehealthd_
// family the daemon can expose must be described there.
func TestMetricsDocumented(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.Publish(fullUpdate(t0))
	m.ObserveProbe("p", time.Millisecond, errors.New("x"))
	m.Write(cluster.WriteEvent, errors.New("x"))
	m.EventsDropped(cluster.DropRejected, 1)
	// The other publishers' series, which cmd/nodehealthd registers.
	if err := m.Register(outqueue.Collectors()...); err != nil {
		t.Fatal(err)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range fams {
		name := f.GetName()
		if !strings.HasPrefix(name, "nodehealthd_") {
			continue
		}
		n++
		if !regexp.MustCompile("`" + regexp.QuoteMeta(name) + "`").Match(doc) {
			t.Errorf("docs/metrics.md does not describe %s", name)
		}
	}
	if n < 20 {
		t.Errorf("only %d nodehealthd_ families gathered; the update did not touch them all", n)
	}
}
