package systemd

import (
	"fmt"
	"strings"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

// warningWindow is how far back the status line counts warnings.
const warningWindow = time.Hour

// Summary is what the status line shows, copied out of a committed state:
// the state belongs to the pipeline and may change as soon as Publish
// returns, while the line is rendered later (and re-rendered as warnings
// age out of the window).
type Summary struct {
	// Monitored and Healthy count the monitored conditions and the True ones.
	Monitored, Healthy int
	// Unhealthy are the False conditions in display order.
	Unhealthy []condition.Condition
	// Warnings are the detection times of the warnings committed within
	// warningWindow of the commit.
	Warnings []time.Time
	// Cluster is nil in local mode.
	Cluster *state.ClusterLink
	// Unsaved is set while the state file cannot be written.
	Unsaved *state.SaveFailure
}

// Summarize copies what the status line needs from a commit.
func Summarize(st *state.State, conds map[string]condition.Condition, now time.Time) Summary {
	var s Summary
	for _, t := range finding.Conditions {
		c, ok := conds[t]
		if !ok {
			continue
		}
		s.Monitored++
		if c.Status == condition.True {
			s.Healthy++
		} else {
			s.Unhealthy = append(s.Unhealthy, c)
		}
	}
	if st == nil {
		return s
	}
	since := now.Add(-warningWindow)
	for _, f := range st.Recent {
		if f.Severity == finding.Warning && !f.Detected.Before(since) {
			s.Warnings = append(s.Warnings, f.Detected)
		}
	}
	if st.Cluster != nil {
		c := *st.Cluster
		s.Cluster = &c
	}
	return s
}

// Line renders the summary for systemd's STATUS=, as `systemctl status`
// shows it, e.g.
//
//	5/5 conditions healthy · 3 warnings in 1h · cluster: connected
//	NetworkingReady=False (InterfaceNotUp since 10:02) · cluster: local
//	STATE NOT PERSISTED since 10:05 · StorageReady=False (FilesystemReadOnly since 10:05) · cluster: connected
//
// Times are in the host's local zone, like the rest of `systemctl status`.
func (s Summary) Line(now time.Time) string {
	var parts []string
	// First: it changes what every other part means (a restart now would
	// forget it).
	if s.Unsaved != nil {
		parts = append(parts, "STATE NOT PERSISTED since "+clock(s.Unsaved.Since, now))
	}
	warnings := 0
	for _, t := range s.Warnings {
		if !t.Before(now.Add(-warningWindow)) {
			warnings++
		}
	}
	switch {
	case s.Monitored == 0:
		parts = append(parts, "no conditions monitored")
	case len(s.Unhealthy) == 0:
		parts = append(parts, fmt.Sprintf("%d/%d conditions healthy", s.Healthy, s.Monitored))
	default:
		bad := make([]string, len(s.Unhealthy))
		for i, c := range s.Unhealthy {
			bad[i] = fmt.Sprintf("%s=%s (%s since %s)", c.Type, c.Status, c.Reason, clock(c.LastTransitionTime, now))
		}
		parts = append(parts, strings.Join(bad, ", "))
	}
	// An unhealthy line is already long; warnings are then only worth
	// space when there are some.
	if len(s.Unhealthy) == 0 || warnings > 0 {
		parts = append(parts, plural(warnings, "warning")+" in 1h")
	}
	parts = append(parts, "cluster: "+clusterText(s.Cluster, now))
	return strings.Join(parts, " · ")
}

func plural(n int, what string) string {
	switch n {
	case 0:
		return "no " + what + "s"
	case 1:
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func clusterText(c *state.ClusterLink, now time.Time) string {
	if c == nil {
		return "local"
	}
	var s string
	switch {
	case c.Connected:
		s = "connected"
	case c.Unauthenticated:
		s = "cannot authenticate"
	case c.LastSuccess.IsZero():
		s = "connecting"
	default:
		s = "disconnected since " + clock(c.LastSuccess, now)
	}
	if c.PendingWrites > 0 {
		s += fmt.Sprintf(" (%d pending)", c.PendingWrites)
	}
	return s
}

// clock shows t as a time of day, with the date when it is not today.
func clock(t, now time.Time) string {
	t, now = t.Local(), now.Local()
	if t.YearDay() == now.YearDay() && t.Year() == now.Year() {
		return t.Format("15:04")
	}
	return t.Format("Jan 2 15:04")
}
