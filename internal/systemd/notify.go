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

// Tick marks the pipeline alive; the daemon calls it from the pipeline
// goroutine on every housekeeping tick, commit or not.
func (n *Notifier) Tick(time.Time) {
	n.mu.Lock()
	n.alive = time.Now()
	n.mu.Unlock()
}

// Start runs the notifier goroutine until ctx ends.
func (n *Notifier) Start(ctx context.Context, _ publish.Feedback) {
	go n.run(ctx)
}

func (n *Notifier) run(ctx context.Context) {
	// Half the watchdog interval, as sd_watchdog_enabled(3) advises: a ping
	// delayed by a busy machine still lands within the interval.
	period := statusRefresh
	if n.watchdog > 0 {
		period = min(period, n.watchdog/2)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	ready := false
	last := ""
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
		if !have {
			// Not ready before the first commit: until then a restart
			// would not remember anything this run detected.
			continue
		}
		var msg []string
		if line := sum.Line(now); line != last {
			msg = append(msg, "STATUS="+line)
			last = line
		}
		if !ready {
			msg = append(msg, daemon.SdNotifyReady)
			ready = true
		}
		// The pipeline goroutine ticks at least four times per watchdog
		// interval. If it has not been seen for half the interval it is stuck (a hung state write, a
		// deadlock): stop pinging and let systemd restart the daemon from
		// its last committed state.
		if n.watchdog > 0 {
			if now.Sub(alive) < n.watchdog/2 {
				msg = append(msg, daemon.SdNotifyWatchdog)
			} else {
				n.log.Error("pipeline stalled; withholding watchdog ping", "last_seen", alive, "watchdog", n.watchdog)
			}
		}
		if len(msg) > 0 {
			n.notify(strings.Join(msg, "\n"))
		}
	}
}

func (n *Notifier) notify(s string) {
	if err := n.send(s); err != nil {
		n.log.Warn("cannot notify systemd", "err", err)
	}
}
