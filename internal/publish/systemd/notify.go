// Package systemd integrates the daemon with the service manager through
// sd_notify: READY=1 once the first state is committed, a STATUS= line that
// follows node health for `systemctl status`, STOPPING=1 on shutdown, and
// WATCHDOG=1 pings that stop when the pipeline stops moving.
package systemd

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/nodehealthd/nodehealthd/internal/publish"
)

// statusRefresh bounds how stale the status line gets while nothing is
// committed: warnings leave the one-hour window without any commit.
const statusRefresh = 30 * time.Second

// Notifier is a publisher (and Starter, for its goroutine; and Ticker, to
// see the pipeline alive while nothing changes) that talks to systemd.
type Notifier struct {
	log      *slog.Logger
	watchdog time.Duration
	// send delivers one notification; daemon.SdNotify in the daemon.
	send func(state string) error

	mu    sync.Mutex
	sum   Summary
	have  bool      // a commit has been seen
	alive time.Time // last Publish or Tick, from the pipeline goroutine

	kick chan struct{}
}

var (
	_ publish.Publisher = (*Notifier)(nil)
	_ publish.Starter   = (*Notifier)(nil)
	_ publish.Ticker    = (*Notifier)(nil)
)

// New returns a Notifier for the service manager named by NOTIFY_SOCKET,
// with the watchdog interval from WATCHDOG_USEC (none when unset or meant
// for another process). A malformed WATCHDOG_USEC is logged and treated as
// no watchdog: readiness and status still work, and systemd restarts the
// daemon if it did expect pings.
func New(log *slog.Logger) *Notifier {
	wd, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Error("ignoring the systemd watchdog settings", "err", err)
		wd = 0
	}
	send := func(s string) error {
		_, err := daemon.SdNotify(false, s)
		return err
	}
	return &Notifier{log: log, watchdog: wd, send: send, kick: make(chan struct{}, 1)}
}

// Watchdog is the interval systemd expects pings within (0 = none).
func (n *Notifier) Watchdog() time.Duration { return n.watchdog }

// Publish records the committed state and wakes the notifier goroutine;
// the socket write happens there, so a stuck service manager cannot stall
// detection.
func (n *Notifier) Publish(u publish.Update) {
	s := Summarize(u.State, u.Conditions, u.Time)
	s.Unsaved = u.Unsaved
	n.mu.Lock()
	n.sum, n.have, n.alive = s, true, time.Now()
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Tick marks the pipeline alive and wakes the notifier goroutine, which
// pings the watchdog then. The daemon calls it from the pipeline goroutine
// on every housekeeping tick, commit or not: the pings ride on those ticks
// rather than on a timer of their own, so that an idle daemon wakes once
// for both.
func (n *Notifier) Tick(time.Time) {
	n.mu.Lock()
	n.alive = time.Now()
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Start runs the notifier goroutine until ctx ends.
func (n *Notifier) Start(ctx context.Context, _ publish.Feedback) {
	go n.run(ctx)
}

func (n *Notifier) run(ctx context.Context) {
	// The timer fires only when nothing else wakes the goroutine: to
	// refresh the status line, and with a watchdog when the pipeline has
	// not been seen for half its interval.
	t := time.NewTimer(statusRefresh)
	defer t.Stop()
	ready, stalled := false, false
	last := ""
	var lastPing time.Time
	for {
		select {
		case <-ctx.Done():
			n.notify("STOPPING=1\nSTATUS=stopping")
			return
		case <-n.kick:
		case <-t.C:
		}
		now := time.Now()
		n.mu.Lock()
		sum, have, alive := n.sum, n.have, n.alive
		n.mu.Unlock()
		t.Reset(statusRefresh)
		if !have {
			// Not ready before the first commit: until then a restart
			// would not remember anything this run detected.
			continue
		}
		// What is sent is remembered only once sent: a notification
		// lost to a full or missing socket is sent again at the next
		// wake, READY=1 above all (systemd waits for it).
		var msg []string
		line, ping := sum.Line(now), false
		if line != last {
			msg = append(msg, "STATUS="+line)
		}
		if !ready {
			msg = append(msg, daemon.SdNotifyReady)
		}
		// The pipeline goroutine ticks at least three times per watchdog
		// interval. If it has not been seen for half the interval it is
		// stuck (a hung state write, a deadlock): pings stop, and systemd
		// restarts the daemon from its last committed state. While it moves,
		// each tick or commit pings, at most four times per interval (a
		// burst of commits must not become a burst of pings).
		if n.watchdog > 0 {
			if seen := now.Sub(alive); seen >= n.watchdog/2 {
				if !stalled {
					n.log.Error("pipeline stalled; withholding watchdog pings", "last_seen", alive, "watchdog", n.watchdog)
					stalled = true
				}
			} else {
				if stalled {
					n.log.Info("pipeline moving again; watchdog pings resume", "watchdog", n.watchdog)
					stalled = false
				}
				if now.Sub(lastPing) >= n.watchdog/4 {
					msg = append(msg, daemon.SdNotifyWatchdog)
					ping = true
				}
				t.Reset(min(statusRefresh, n.watchdog/2-seen))
			}
		}
		if len(msg) > 0 && n.notify(strings.Join(msg, "\n")) {
			last, ready = line, true
			if ping {
				lastPing = now
			}
		}
	}
}

// notify sends s and says whether it went.
func (n *Notifier) notify(s string) bool {
	if err := n.send(s); err != nil {
		n.log.Warn("cannot notify systemd", "err", err)
		return false
	}
	return true
}
