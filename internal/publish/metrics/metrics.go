// Package metrics exposes the daemon to Prometheus: a publisher that turns
// every committed update into series, hooks for the parts of the daemon that
// work outside the pipeline (probes, the cluster publisher), and the HTTP
// endpoints /metrics, /healthz and /readyz.
//
// Series derived from the committed state (conditions, active findings,
// positions, lag, outbox) are rebuilt from one snapshot per scrape, so a
// scrape never sees half of a commit; counters are fed incrementally.
package metrics

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/publish/cluster"
	"github.com/nodehealthd/nodehealthd/internal/source"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

const namespace = "nodehealthd"

// ReasonOutboxFull is the events_dropped_total reason the pipeline reports
// itself (from State.OutboxDropped); the cluster publisher reports the
// others (cluster.Drop*).
const ReasonOutboxFull = "outbox_full"

// Options configure New.
type Options struct {
	// Version is reported by nodehealthd_build_info.
	Version string
	// StaleAfter is how long the pipeline may go without a commit or tick
	// before /readyz fails (default DefaultStaleAfter).
	StaleAfter time.Duration
	// Now is the clock (tests replace it).
	Now func() time.Time
}

// DefaultStaleAfter leaves room for a commit that covers a long burst while
// still catching a wedged pipeline well before anyone trusts stale
// conditions for long.
const DefaultStaleAfter = 2 * time.Minute

// Metrics is the daemon's registry. It implements publish.Publisher,
// publish.Ticker and ClusterObserver.
type Metrics struct {
	opts Options
	reg  *prometheus.Registry

	findings      *prometheus.CounterVec
	repeats       *prometheus.CounterVec
	cleared       *prometheus.CounterVec
	records       *prometheus.CounterVec
	lost          *prometheus.CounterVec
	truncated     *prometheus.CounterVec
	ruleSeconds   prometheus.Counter
	stateWrite    prometheus.Histogram
	saveFailures  prometheus.Counter
	commits       prometheus.Counter
	probeDuration *prometheus.HistogramVec
	probeFailures *prometheus.CounterVec
	pluginRuns    *prometheus.CounterVec
	apiWrites     *prometheus.CounterVec
	apiErrors     *prometheus.CounterVec
	eventsEmitted prometheus.Counter
	eventsDropped *prometheus.CounterVec

	mu   sync.Mutex
	snap snapshot
	// outboxDropped is the last State.OutboxDropped seen, to turn the
	// state's lifetime total into counter increments.
	outboxDropped uint64
}

// snapshot is the state-derived part of the series as of the last commit.
type snapshot struct {
	committed  bool
	lastCommit time.Time
	lastTick   time.Time
	conditions []condition.Condition
	active     map[[2]string]int // condition, reason
	lag        map[string]float64
	lastRecord map[string]time.Time
	seq        map[string]uint64
	offset     map[string]int64
	outbox     int
	cluster    *state.ClusterLink
	unsaved    *state.SaveFailure

	// recurrences is the most reboots an active finding of a reason (as
	// detected) survived, by condition and reason.
	recurrences map[[2]string]int
}

var (
	_ publish.Publisher = (*Metrics)(nil)
	_ publish.Ticker    = (*Metrics)(nil)
	_ cluster.Observer  = (*Metrics)(nil)
)

// New returns a Metrics with its own registry, including the Go runtime and
// process collectors.
func New(opts Options) *Metrics {
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = DefaultStaleAfter
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Version == "" {
		opts.Version = "unknown"
	}
	m := &Metrics{
		opts: opts,
		reg:  prometheus.NewRegistry(),
		findings: counterVec("findings_total",
			"Findings committed, by condition, reason and severity. A repeat of an active Fatal finding only refreshes it and is not counted.",
			"condition", "reason", "severity"),
		repeats: counterVec("finding_repeats_total",
			"Occurrences of a problem that did not make a finding of their own, by condition, reason and severity: an active Fatal finding seen again, a Warning seen again within the coalescing window (committed as one finding with a count) or from a second source. Findings plus repeats is every occurrence committed.",
			"condition", "reason", "severity"),
		cleared: counterVec("findings_cleared_total",
			"Active Fatal findings ended, by condition, reason and what ended them (expiry, reboot, operator, probe:<name>).",
			"condition", "reason", "by"),
		records: counterVec("source_records_total",
			"Log records run through the rules, by source.",
			"source"),
		lost: counterVec("source_records_lost_total",
			"Log records a source could not deliver (kmsg ring overwrite, journal vacuum, truncated file), by source.",
			"source"),
		truncated: counterVec("source_records_truncated_total",
			fmt.Sprintf("Log records longer than %d bytes, cut to that many before the rules saw them, by source.", source.MaxMessageBytes),
			"source"),
		ruleSeconds: counter("rule_evaluation_seconds_total",
			"Time spent running records through the rule engine."),
		stateWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "state_write_duration_seconds",
			Help: "Time to write and fsync the state file, per commit.",
			// fsync on an idle NVMe volume takes well under a millisecond;
			// the upper buckets are for EBS under I/O pressure.
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		saveFailures: counter("state_save_failures_total",
			"Failed attempts to write the state file (read-only or full filesystem, I/O error). Detection and publishing go on from memory meanwhile; /readyz fails until a write succeeds."),
		commits: counter("state_commits_total",
			"State commits (state file written, publishers told)."),
		probeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "probe_duration_seconds",
			Help:    "Duration of host probe checks, by probe; failed and timed-out checks included.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30},
		}, []string{"probe"}),
		probeFailures: counterVec("probe_failures_total",
			"Probe checks that could not run (error or timeout), by probe. A check that finds a problem is not a failure.",
			"probe"),
		pluginRuns: counterVec("plugin_runs_total",
			"Custom plugin runs, by plugin (the monitor's source), rule type, reason and result (ok, problem, unknown: other exit status, timed out and killed, or could not start).",
			"plugin", "type", "reason", "result"),
		apiWrites: counterVec("api_writes_total",
			"Write requests to the Kubernetes API server, by kind (node_status, event), successful or not.",
			"kind"),
		apiErrors: counterVec("api_write_errors_total",
			"Write requests to the Kubernetes API server that failed, by kind.",
			"kind"),
		eventsEmitted: counter("events_emitted_total",
			"Kubernetes events created."),
		eventsDropped: counterVec("events_dropped_total",
			"Kubernetes events given up on, by reason (outbox_full, rate_limited, rejected).",
			"reason"),
	}
	m.reg.MustRegister(
		m.findings, m.repeats, m.cleared, m.records, m.lost, m.truncated, m.ruleSeconds, m.stateWrite, m.saveFailures, m.commits,
		m.probeDuration, m.probeFailures, m.pluginRuns, m.apiWrites, m.apiErrors, m.eventsEmitted, m.eventsDropped,
		stateCollector{m},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "build_info",
			Help:        "Always 1; the labels say which build runs.",
			ConstLabels: prometheus.Labels{"version": opts.Version, "goversion": runtime.Version()},
		}, func() float64 { return 1 }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is the registry /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Register adds the series of another package (capture, nodediag,
// consolesummary keep theirs in package variables); a collector already
// registered is not an error, so that setting a subsystem up twice is not.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return err
		}
	}
	return nil
}

// Tick implements publish.Ticker: the pipeline is alive even when there is
// nothing to commit.
func (m *Metrics) Tick(now time.Time) {
	m.mu.Lock()
	m.snap.lastTick = now
	m.mu.Unlock()
}

// Publish implements publish.Publisher.
func (m *Metrics) Publish(u publish.Update) {
	for _, f := range u.New {
		m.findings.WithLabelValues(f.Condition, f.Reason, string(f.Severity)).Inc()
		if f.Count > 1 {
			m.repeats.WithLabelValues(f.Condition, f.Reason, string(f.Severity)).Add(float64(f.Count - 1))
		}
	}
	for k, n := range u.Repeats {
		m.repeats.WithLabelValues(k.Condition, k.Reason, string(k.Severity)).Add(float64(n))
	}
	for _, c := range u.Cleared {
		m.cleared.WithLabelValues(c.Finding.Condition, c.Finding.Reason, c.By).Inc()
	}
	for src, n := range u.Stats.Records {
		m.records.WithLabelValues(src).Add(float64(n))
	}
	for src, n := range u.Stats.Lost {
		m.lost.WithLabelValues(src).Add(float64(n))
	}
	for src, n := range u.Stats.Truncated {
		m.truncated.WithLabelValues(src).Add(float64(n))
	}
	m.ruleSeconds.Add(u.Stats.RuleTime.Seconds())
	m.saveFailures.Add(float64(u.Stats.SaveFailures))
	if u.Unsaved == nil {
		m.stateWrite.Observe(u.Stats.SaveTime.Seconds())
		m.commits.Inc()
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.snap
	if s.lag == nil {
		s.lag, s.lastRecord = map[string]float64{}, map[string]time.Time{}
	}
	s.committed = true
	s.lastCommit = u.Time
	s.unsaved = u.Unsaved
	// Sources without records in this commit keep their last lag: a quiet
	// source is not a late one.
	for src, t := range u.Stats.SourceTime {
		s.lag[src] = max(0, u.Time.Sub(t).Seconds())
		s.lastRecord[src] = t
	}
	s.conditions = s.conditions[:0]
	for _, c := range u.Conditions {
		s.conditions = append(s.conditions, c)
	}
	sort.Slice(s.conditions, func(i, j int) bool { return s.conditions[i].Type < s.conditions[j].Type })
	st := u.State
	if st == nil {
		return
	}
	s.active = map[[2]string]int{}
	s.recurrences = map[[2]string]int{}
	for _, f := range st.Active {
		s.active[[2]string{f.Condition, f.Reason}]++
		if r := f.Recurrence; r != nil {
			k := [2]string{f.Condition, r.Reason}
			s.recurrences[k] = max(s.recurrences[k], r.Reboots)
		}
	}
	s.seq, s.offset = map[string]uint64{}, map[string]int64{}
	for src, p := range st.Positions {
		if p.Seq > 0 {
			s.seq[src] = p.Seq
		}
		if p.Inode > 0 {
			s.offset[src] = p.Offset
		}
	}
	s.outbox = len(st.Outbox)
	s.cluster = nil
	if st.Cluster != nil {
		c := *st.Cluster
		s.cluster = &c
	}
	if st.OutboxDropped < m.outboxDropped {
		// The state file was replaced (moved aside as corrupt); count
		// from the new total.
		m.outboxDropped = 0
	}
	if d := st.OutboxDropped - m.outboxDropped; d > 0 {
		m.eventsDropped.WithLabelValues(ReasonOutboxFull).Add(float64(d))
	}
	m.outboxDropped = st.OutboxDropped
}

// ObserveProbe records one probe check; it matches probe.Runner.Observe.
func (m *Metrics) ObserveProbe(probe string, took time.Duration, err error) {
	m.probeDuration.WithLabelValues(probe).Observe(took.Seconds())
	if err != nil {
		m.probeFailures.WithLabelValues(probe).Inc()
	} else {
		// Present from the first check so that rate() over failures works
		// before the first failure.
		m.probeFailures.WithLabelValues(probe).Add(0)
	}
}

// ObservePlugin counts one custom plugin run.
func (m *Metrics) ObservePlugin(plugin, ruleType, reason, result string) {
	m.pluginRuns.WithLabelValues(plugin, ruleType, reason, result).Inc()
}

// Write implements cluster.Observer. Events are counted as emitted from
// successful event writes, so that the publisher reports each request once.
func (m *Metrics) Write(kind string, err error) {
	m.apiWrites.WithLabelValues(kind).Inc()
	errs := m.apiErrors.WithLabelValues(kind)
	if err != nil {
		errs.Inc()
		return
	}
	if kind == cluster.WriteEvent {
		m.eventsEmitted.Inc()
	}
}

// EventsDropped implements cluster.Observer.
func (m *Metrics) EventsDropped(reason string, n int) {
	m.eventsDropped.WithLabelValues(reason).Add(float64(n))
}

// Ready reports whether the daemon has committed its state at least once,
// its pipeline has committed or ticked within StaleAfter, its state file
// is being written, and the cluster publisher is not failing to
// authenticate (which leaves the node's health unseen by the cluster until
// someone fixes the credentials); the error says why not. A daemon that
// cannot write its state still detects and publishes, but a restart would
// forget what it found meanwhile: that is degraded, and /readyz says so.
func (m *Metrics) Ready() error {
	m.mu.Lock()
	s := m.snap
	m.mu.Unlock()
	if !s.committed {
		return errNotCommitted
	}
	last := s.lastCommit
	if s.lastTick.After(last) {
		last = s.lastTick
	}
	if age := m.opts.Now().Sub(last); age > m.opts.StaleAfter {
		return &staleError{age: age}
	}
	if s.unsaved != nil {
		return fmt.Errorf("degraded: state not persisted since %s (%d failed writes, last: %s); detection and publishing continue from memory",
			s.unsaved.Since.UTC().Format(time.RFC3339), s.unsaved.Failures, s.unsaved.Err)
	}
	if c := s.cluster; c != nil && c.Unauthenticated {
		return fmt.Errorf("cluster publisher cannot authenticate: %s", c.LastError)
	}
	return nil
}

var errNotCommitted = errors.New("no state committed yet")

type staleError struct{ age time.Duration }

func (e *staleError) Error() string {
	return fmt.Sprintf("pipeline has not committed or ticked for %s", e.age.Round(time.Second))
}
