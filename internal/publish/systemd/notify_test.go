package systemd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/publish"
	"github.com/nodehealthd/nodehealthd/internal/state"
)

func healthy(types ...string) map[string]condition.Condition {
	m := map[string]condition.Condition{}
	for _, t := range types {
		m[t] = condition.Condition{Type: t, Status: condition.True}
	}
	return m
}

func TestLine(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 30, 0, 0, time.Local)
	all := healthy(finding.Conditions...)
	bad := healthy(finding.KernelReady, finding.NetworkingReady, finding.StorageReady)
	bad[finding.NetworkingReady] = condition.Condition{Type: finding.NetworkingReady, Status: condition.False,
		Reason: "InterfaceNotUp", LastTransitionTime: now.Add(-28 * time.Minute)}
	twoBad := healthy(finding.KernelReady, finding.NetworkingReady)
	twoBad[finding.KernelReady] = condition.Condition{Type: finding.KernelReady, Status: condition.False,
		Reason: "ForkFailedOutOfPIDs", LastTransitionTime: now.Add(-26 * time.Hour)}
	twoBad[finding.NetworkingReady] = bad[finding.NetworkingReady]
	warn := func(ago time.Duration) finding.Finding {
		return finding.Finding{Severity: finding.Warning, Reason: "SoftLockup", Detected: now.Add(-ago)}
	}
	fatal := finding.Finding{Severity: finding.Fatal, Reason: "X", Detected: now}
	st := &state.State{Recent: []finding.Finding{warn(2 * time.Hour), warn(50 * time.Minute), fatal, warn(time.Minute), warn(0)}}
	tests := []struct {
		name  string
		st    *state.State
		conds map[string]condition.Condition
		at    time.Time
		want  string
	}{
		{"all healthy, local", &state.State{}, all, now, "5/5 conditions healthy · no warnings in 1h · cluster: local"},
		{"warnings counted in the last hour only", st, all, now, "5/5 conditions healthy · 3 warnings in 1h · cluster: local"},
		{"warnings age out without a commit", st, all, now.Add(20 * time.Minute), "5/5 conditions healthy · 2 warnings in 1h · cluster: local"},
		{"one warning", &state.State{Recent: []finding.Finding{warn(0)}}, all, now, "5/5 conditions healthy · 1 warning in 1h · cluster: local"},
		{"unhealthy, connected", &state.State{Cluster: &state.ClusterLink{Connected: true}}, bad, now,
			"NetworkingReady=False (InterfaceNotUp since 10:02) · cluster: connected"},
		{"unhealthy with warnings, older date shown", &state.State{Recent: []finding.Finding{warn(0)}}, twoBad, now,
			"KernelReady=False (ForkFailedOutOfPIDs since Nov 24 08:30), NetworkingReady=False (InterfaceNotUp since 10:02) · 1 warning in 1h · cluster: local"},
		{"cluster down with pending writes", &state.State{Cluster: &state.ClusterLink{LastSuccess: now.Add(-5 * time.Minute), PendingWrites: 3}}, all, now,
			"5/5 conditions healthy · no warnings in 1h · cluster: disconnected since 10:25 (3 pending)"},
		{"cluster never reached", &state.State{Cluster: &state.ClusterLink{}}, all, now, "5/5 conditions healthy · no warnings in 1h · cluster: connecting"},
		{"credentials fail", &state.State{Cluster: &state.ClusterLink{LastSuccess: now.Add(-5 * time.Minute), Unauthenticated: true, PendingWrites: 1}}, all, now,
			"5/5 conditions healthy · no warnings in 1h · cluster: cannot authenticate (1 pending)"},
		{"nothing monitored", nil, nil, now, "no conditions monitored · no warnings in 1h · cluster: local"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Summarize(tc.st, tc.conds, now).Line(tc.at)
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// notifySocket stands in for systemd's notification socket: the notifier
// under test uses the real sd_notify client (daemon.SdNotify) against it.
type notifySocket struct {
	t    *testing.T
	conn *net.UnixConn
	msgs chan string
}

func listenNotify(t *testing.T, watchdog time.Duration) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	if watchdog > 0 {
		t.Setenv("WATCHDOG_USEC", strconv.FormatInt(watchdog.Microseconds(), 10))
		t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	}
	s := &notifySocket{t: t, conn: conn, msgs: make(chan string, 100)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(s.msgs)
				return
			}
			s.msgs <- string(buf[:n])
		}
	}()
	return s
}

// next returns the next message that contains want, failing after timeout.
func (s *notifySocket) next(want string, timeout time.Duration) string {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-s.msgs:
			if strings.Contains(m, want) {
				return m
			}
		case <-deadline:
			s.t.Fatalf("no notification containing %q within %v", want, timeout)
		}
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestReadyStatusStopping(t *testing.T) {
	sock := listenNotify(t, 0)
	n := New(quietLog())
	if n.Watchdog() != 0 {
		t.Fatalf("watchdog %v without WATCHDOG_USEC", n.Watchdog())
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.Start(ctx, nil)
	select {
	case m := <-sock.msgs:
		t.Fatalf("notified %q before the first commit", m)
	case <-time.After(100 * time.Millisecond):
	}
	now := time.Now()
	n.Publish(publish.Update{Time: now, State: &state.State{}, Conditions: healthy(finding.KernelReady, finding.StorageReady)})
	m := sock.next("READY=1", 2*time.Second)
	if !strings.Contains(m, "STATUS=2/2 conditions healthy · no warnings in 1h · cluster: local") {
		t.Errorf("first notification %q lacks the status line", m)
	}
	conds := healthy(finding.StorageReady)
	conds[finding.KernelReady] = condition.Condition{Type: finding.KernelReady, Status: condition.False, Reason: "KernelBug", LastTransitionTime: now}
	n.Publish(publish.Update{Time: now, State: &state.State{}, Conditions: conds})
	m = sock.next("STATUS=", 2*time.Second)
	if !strings.HasPrefix(m, "STATUS=KernelReady=False (KernelBug since ") || strings.Contains(m, "READY=1") {
		t.Errorf("status change sent as %q", m)
	}
	cancel()
	sock.next("STOPPING=1", 2*time.Second)
}

func TestWatchdogFollowsPipeline(t *testing.T) {
	const wd = 400 * time.Millisecond
	sock := listenNotify(t, wd)
	n := New(quietLog())
	if n.Watchdog() != wd {
		t.Fatalf("watchdog %v, want %v", n.Watchdog(), wd)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n.Start(ctx, nil)
	n.Publish(publish.Update{Time: time.Now(), State: &state.State{}, Conditions: healthy(finding.KernelReady)})
	sock.next("READY=1", time.Second)

	// A live pipeline ticks three times per interval in the daemon; faster
	// here.
	tick := func() context.CancelFunc {
		pipeline, stop := context.WithCancel(context.Background())
		go func() {
			for pipeline.Err() == nil {
				n.Tick(time.Now())
				time.Sleep(20 * time.Millisecond)
			}
		}()
		return stop
	}
	stall := tick()
	for range 3 {
		sock.next("WATCHDOG=1", 2*wd)
	}

	stall()
	stalledAt := time.Now()
	// Pings may continue for up to half the interval after the last tick
	// (plus one period of the notifier's ticker); after that, none.
	quietFrom := stalledAt.Add(wd/2 + wd/2 + 50*time.Millisecond)
	timeout := time.After(3 * wd)
	for {
		select {
		case m := <-sock.msgs:
			if strings.Contains(m, "WATCHDOG=1") && time.Now().After(quietFrom) {
				t.Fatalf("watchdog ping %v after the pipeline stalled", time.Since(stalledAt))
			}
			continue
		case <-timeout:
		}
		break
	}

	// The pipeline recovering resumes the pings.
	defer tick()()
	sock.next("WATCHDOG=1", 2*wd)
}

// The pings ride on the pipeline's ticks: each tick is answered by a ping
// at once, not at the notifier's own pace (so that an idle daemon wakes
// once for both).
func TestWatchdogPingsOnTick(t *testing.T) {
	const wd = 6 * time.Second
	sock := listenNotify(t, wd)
	n := New(quietLog())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n.Start(ctx, nil)
	n.Publish(publish.Update{Time: time.Now(), State: &state.State{}, Conditions: healthy(finding.KernelReady)})
	sock.next("READY=1", time.Second)
	for range 3 {
		time.Sleep(wd/4 + 100*time.Millisecond)
		n.Tick(time.Now())
		sock.next("WATCHDOG=1", 700*time.Millisecond)
	}
}

func TestLineStateNotPersisted(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 30, 0, 0, time.Local)
	conds := healthy(finding.Conditions...)
	conds[finding.StorageReady] = condition.Condition{Type: finding.StorageReady, Status: condition.False,
		Reason: "FilesystemReadOnly", LastTransitionTime: now.Add(-25 * time.Minute)}
	s := Summarize(&state.State{}, conds, now)
	s.Unsaved = &state.SaveFailure{Since: now.Add(-25 * time.Minute), Err: "read-only file system", Failures: 7}
	want := "STATE NOT PERSISTED since 10:05 · StorageReady=False (FilesystemReadOnly since 10:05) · cluster: local"
	if got := s.Line(now); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// A notification that could not be sent (the socket's queue full while
// systemd is busy) is sent again at the next wake: READY=1 lost once must
// not leave systemd waiting for it until the start times out.
func TestReadySentAgainAfterFailure(t *testing.T) {
	sent, failed := make(chan string, 10), make(chan struct{})
	n := &Notifier{log: quietLog(), kick: make(chan struct{}, 1), send: func(s string) error {
		if failed != nil {
			close(failed)
			failed = nil
			return errors.New("resource temporarily unavailable")
		}
		sent <- s
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n.Start(ctx, nil)
	u := publish.Update{Time: time.Now(), State: &state.State{}, Conditions: healthy(finding.KernelReady)}
	wait := failed
	n.Publish(u)
	<-wait
	n.Publish(u) // the same state again: nothing new but what was lost
	select {
	case m := <-sent:
		if !strings.Contains(m, "READY=1") || !strings.Contains(m, "STATUS=1/1 conditions healthy") {
			t.Errorf("sent %q after the failure, want READY=1 and the status line", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing sent again after the failed notification")
	}
}
