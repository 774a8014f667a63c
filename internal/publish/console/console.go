// Package console prints findings and condition changes to a writer: the
// daemon's output in local mode and of `nodehealthd --once`.
package console

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// Printer writes one line per finding, clear and condition change.
type Printer struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
	last map[string]condition.Condition
}

// New returns a printer writing text, or JSON objects one per line.
func New(w io.Writer, asJSON bool) *Printer {
	return &Printer{w: w, json: asJSON, last: map[string]condition.Condition{}}
}

// Line is the JSON form of one printed event.
type Line struct {
	Time      time.Time `json:"time"`
	Event     string    `json:"event"` // finding, cleared, condition
	Condition string    `json:"condition"`
	Reason    string    `json:"reason"`
	Severity  string    `json:"severity,omitempty"`
	Status    string    `json:"status,omitempty"`
	Message   string    `json:"message"`
	Source    string    `json:"source,omitempty"`
	ID        uint64    `json:"id,omitempty"`
	// Count is how many occurrences a finding stands for, when more than
	// one: identical Warnings within a few seconds are one finding
	// (state.CoalesceWindow), so that a log flood prints a line per
	// window, not per log line.
	Count int    `json:"count,omitempty"`
	By    string `json:"by,omitempty"`
	// Replay marks a line printed again at start: a stop came between its
	// commit and its first printing (at-least-once).
	Replay bool `json:"replay,omitempty"`
}

// Publish prints the update.
func (p *Printer) Publish(u publish.Update) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.findings(u.New, u.Cleared, false)
	if u.ConditionsChanged {
		types := make([]string, 0, len(u.Conditions))
		for t := range u.Conditions {
			types = append(types, t)
		}
		sort.Strings(types)
		for _, t := range types {
			c := u.Conditions[t]
			if p.last[t] == c {
				continue
			}
			p.last[t] = c
			p.emit(Line{Time: c.LastTransitionTime, Event: "condition", Condition: t, Status: c.Status, Reason: c.Reason, Message: c.Message})
		}
	}
}

// Replay implements publish.Replayer.
func (p *Printer) Replay(fs []finding.Finding, cs []state.Cleared) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.findings(fs, cs, true)
}

func (p *Printer) findings(fs []finding.Finding, cs []state.Cleared, replay bool) {
	for _, f := range fs {
		l := Line{Time: f.Detected, Event: "finding", Condition: f.Condition, Reason: f.Reason, Severity: string(f.Severity), Message: f.Message, Source: f.Source, ID: f.ID, Replay: replay}
		if f.Count > 1 {
			l.Count = f.Count
		}
		p.emit(l)
	}
	for _, c := range cs {
		p.emit(Line{Time: c.At, Event: "cleared", Condition: c.Finding.Condition, Reason: c.Finding.Reason, Message: c.Finding.Message, ID: c.Finding.ID, By: c.By, Replay: replay})
	}
}

func (p *Printer) emit(l Line) {
	if p.json {
		b, _ := json.Marshal(l)
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	ts := l.Time.Local().Format("2006-01-02 15:04:05")
	replayed := ""
	if l.Replay {
		replayed = " (replayed)"
	}
	switch l.Event {
	case "finding":
		times := ""
		if l.Count > 1 {
			times = fmt.Sprintf(" ×%d", l.Count)
		}
		fmt.Fprintf(p.w, "%s %-7s %s/%s: %s [%s #%d]%s%s\n", ts, l.Severity, l.Condition, l.Reason, l.Message, l.Source, l.ID, times, replayed)
	case "cleared":
		fmt.Fprintf(p.w, "%s cleared %s/%s (by %s): %s [#%d]%s\n", ts, l.Condition, l.Reason, l.By, l.Message, l.ID, replayed)
	case "condition":
		fmt.Fprintf(p.w, "%s %s=%s %s: %s\n", ts, l.Condition, l.Status, l.Reason, l.Message)
	}
}
