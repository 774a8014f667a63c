package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodehealthd/nodehealthd/internal/condition"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
}

var (
	descCondition = desc("condition",
		"Node condition status: 1 for the condition's current status, 0 for the other (status True = healthy).",
		"condition", "status")
	descConditionTransition = desc("condition_last_transition_timestamp_seconds",
		"When the condition last changed status, as the Node shows it.", "condition")
	descActive = desc("active_findings",
		"Active Fatal findings, by condition and reason.", "condition", "reason")
	descRecurrences = desc("reason_recurrences",
		"Reboots an active Fatal finding survived: earlier boots within the reason's recurrence window that saw its reason (as detected, before any escalation); absent while none recurs.",
		"condition", "reason")
	descLag = desc("source_lag_seconds",
		"Seconds between the newest record of a source and the commit that processed it, as of the source's last commit with records.",
		"source")
	descLastRecord = desc("source_last_record_timestamp_seconds",
		"Time of the newest record processed from a source.", "source")
	descSeq = desc("source_sequence_number",
		"Last processed kernel ring sequence number (kmsg).", "source")
	descOffset = desc("source_offset_bytes",
		"Byte offset after the last processed line of a tailed file.", "source")
	descOutbox = desc("outbox_records",
		"Warning findings in the state file waiting to be delivered as Kubernetes events.")
	descPending = desc("api_pending_writes",
		"Writes the cluster publisher has not yet delivered, as it last reported.")
	descConnected = desc("api_connected",
		"1 when the cluster publisher's last API request succeeded.")
	descLastCommit = desc("last_commit_timestamp_seconds",
		"When the pipeline last committed its state.")
)

// stateCollector emits the series derived from the last committed state.
type stateCollector struct{ m *Metrics }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCondition, descConditionTransition, descActive, descRecurrences, descLag, descLastRecord,
		descSeq, descOffset, descOutbox, descPending, descConnected, descLastCommit} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	s := &c.m.snap
	if !s.committed {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, cond := range s.conditions {
		for _, status := range []string{condition.True, condition.False} {
			v := 0.0
			if cond.Status == status {
				v = 1
			}
			gauge(descCondition, v, cond.Type, status)
		}
		if !cond.LastTransitionTime.IsZero() {
			gauge(descConditionTransition, unix(cond.LastTransitionTime), cond.Type)
		}
	}
	for k, n := range s.active {
		gauge(descActive, float64(n), k[0], k[1])
	}
	for k, n := range s.recurrences {
		gauge(descRecurrences, float64(n), k[0], k[1])
	}
	for src, v := range s.lag {
		gauge(descLag, v, src)
	}
	for src, t := range s.lastRecord {
		gauge(descLastRecord, unix(t), src)
	}
	for src, v := range s.seq {
		gauge(descSeq, float64(v), src)
	}
	for src, v := range s.offset {
		gauge(descOffset, float64(v), src)
	}
	gauge(descOutbox, float64(s.outbox))
	if s.cluster != nil {
		gauge(descPending, float64(s.cluster.PendingWrites))
		connected := 0.0
		if s.cluster.Connected {
			connected = 1
		}
		gauge(descConnected, connected)
	}
	gauge(descLastCommit, unix(s.lastCommit))
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
