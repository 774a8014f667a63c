package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/policy"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// statusView is the JSON form of `nodehealthctl status`.
type statusView struct {
	UpdatedAt        time.Time             `json:"updatedAt"`
	BootID           string                `json:"bootID"`
	Conditions       []condition.Condition `json:"conditions"`
	Active           []finding.Finding     `json:"active"`
	WarningsLastHour int                   `json:"warningsLastHour"`
	RecentWarnings   []finding.Finding     `json:"recentWarnings"`
	Lost             map[string]uint64     `json:"lost,omitempty"`
	Cluster          *state.ClusterLink    `json:"cluster,omitempty"`
	// Daemon is what the running daemon says about itself; nil when none
	// answers (not running, or in another network namespace).
	Daemon          *state.Live        `json:"daemon,omitempty"`
	LastSaveFailure *state.SaveFailure `json:"lastSaveFailure,omitempty"`
	// History is the boots each Fatal reason was seen in, for recurrence
	// after reboots.
	History policy.History `json:"history,omitempty"`
}

// liveTimeout bounds the question to the daemon: status must answer even
// when the daemon is wedged.
const liveTimeout = time.Second

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	var c common
	fl := newFlags("status", stderr, &c, false, true)
	if rc := parse(fl, args, &c); rc >= 0 {
		return rc
	}
	live, _ := state.QueryLive(c.stateDir, liveTimeout)
	st, err := state.Read(c.stateDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stderr, "nodehealthctl status: no state in %s: nodehealthd has not run on this node yet (or uses another --state-dir)\n", c.stateDir)
		} else {
			fmt.Fprintf(stderr, "nodehealthctl status: %s: %v\n", filepath.Join(c.stateDir, state.FileName), err)
		}
		if live != nil {
			fmt.Fprintf(stderr, "nodehealthctl status: %s\n", daemonLine(live, time.Now()))
		}
		return 1
	}
	now := time.Now()
	v := statusView{UpdatedAt: st.UpdatedAt, BootID: st.BootID, Active: st.Active, Lost: st.Lost, Cluster: st.Cluster,
		WarningsLastHour: st.WarningsSince(now.Add(-time.Hour)), Daemon: live, LastSaveFailure: st.LastSaveFailure,
		History: st.History}
	for _, t := range finding.Conditions {
		if cond, ok := st.Conditions[t]; ok {
			v.Conditions = append(v.Conditions, cond)
		}
	}
	for _, f := range st.Recent {
		if f.Severity == finding.Warning && now.Sub(f.Detected) <= time.Hour {
			v.RecentWarnings = append(v.RecentWarnings, f)
		}
	}
	if len(v.RecentWarnings) > 20 {
		v.RecentWarnings = v.RecentWarnings[len(v.RecentWarnings)-20:]
	}
	if c.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
		return 0
	}
	printStatus(stdout, v, now)
	return 0
}

// daemonLine says whether a daemon runs and whether it writes its state.
func daemonLine(l *state.Live, now time.Time) string {
	if l == nil {
		return "Daemon: not running (or not reachable from this network namespace)"
	}
	if u := l.Unsaved; u != nil {
		return fmt.Sprintf("Daemon: running (pid %d), STATE NOT PERSISTED since %s (%d failed writes, last: %s). "+
			"It keeps detecting and publishing from memory; this file is older than what it publishes (see journalctl -u nodehealthd and the Node's conditions)",
			l.PID, stamp(u.Since, now), u.Failures, u.Err)
	}
	return fmt.Sprintf("Daemon: running (pid %d)", l.PID)
}

func printStatus(w io.Writer, v statusView, now time.Time) {
	// A state that is not being written changes what everything below
	// means: say so first.
	if v.Daemon != nil && v.Daemon.Unsaved != nil {
		fmt.Fprintf(w, "%s\n\n", daemonLine(v.Daemon, now))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONDITION\tSTATUS\tREASON\tSINCE\tMESSAGE")
	for _, c := range v.Conditions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, stamp(c.LastTransitionTime, now), finding.Truncate(c.Message, 100))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nActive findings: %d\n", len(v.Active))
	for _, f := range v.Active {
		fmt.Fprintf(w, "  #%d %s %s/%s since %s (seen %d×, last %s) [%s]: %s\n", f.ID, f.Severity, f.Condition, f.Reason,
			stamp(f.Detected, now), f.Count, stamp(f.LastSeen, now), f.Source, f.Message)
		if r := f.Recurrence; r != nil {
			fmt.Fprintf(w, "      RECURRING: %s\n", r.Describe())
		}
	}
	printRecurrences(w, v.History, now)
	fmt.Fprintf(w, "\nWarnings in the last hour: %d\n", v.WarningsLastHour)
	for _, f := range v.RecentWarnings {
		fmt.Fprintf(w, "  %s %s/%s: %s [%s]\n", stamp(f.Detected, now), f.Condition, f.Reason, f.Message, f.Source)
	}
	fmt.Fprintln(w)
	if cl := v.Cluster; cl != nil {
		link := "disconnected"
		switch {
		case cl.Connected:
			link = "connected"
		case cl.Unauthenticated:
			link = "cannot authenticate"
		}
		fmt.Fprintf(w, "Cluster: %s as node %s, last successful write %s, %d pending writes", link, cl.Node, stamp(cl.LastSuccess, now), cl.PendingWrites)
		if cl.EventsDropped > 0 {
			fmt.Fprintf(w, ", %d events dropped by rate limits", cl.EventsDropped)
		}
		if cl.LastError != "" {
			fmt.Fprintf(w, ", last error: %s", cl.LastError)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintln(w, "Cluster: local mode (no kubeconfig)")
	}
	for src, n := range v.Lost {
		fmt.Fprintf(w, "Records lost from %s: %d\n", src, n)
	}
	fmt.Fprintf(w, "State updated %s (boot %s)\n", stamp(v.UpdatedAt, now), v.BootID)
	if f := v.LastSaveFailure; f != nil {
		fmt.Fprintf(w, "State was not persisted from %s to %s (%d failed writes, last: %s)\n", stamp(f.Since, now), stamp(f.Until, now), f.Failures, f.Err)
	}
	fmt.Fprintln(w, daemonLine(v.Daemon, now))
}

func stamp(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	t = t.Local()
	if now.Sub(t) < 24*time.Hour && t.YearDay() == now.YearDay() {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02 15:04:05")
}

// printRecurrences lists the Fatal reasons seen in more than one boot:
// what a reboot did not cure.
func printRecurrences(w io.Writer, h policy.History, now time.Time) {
	var lines []string
	for _, r := range slices.Sorted(maps.Keys(h)) {
		ss := h[r]
		if len(ss) < 2 {
			continue
		}
		var at []string
		for _, s := range ss {
			at = append(at, stamp(s.At, now))
		}
		lines = append(lines, fmt.Sprintf("  %s: %d boots (%s)", r, len(ss), strings.Join(at, ", ")))
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "\nFatal reasons seen in several boots (last %d boots each):\n%s\n", policy.MaxBootsPerReason, strings.Join(lines, "\n"))
}
