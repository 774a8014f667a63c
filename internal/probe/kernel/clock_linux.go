package kernel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	godbus "github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

var clockSync = probe.Kind{Name: "clock-sync", Period: 5 * time.Minute}

type clockSyncProbe struct {
	probe.Base
	// ntpSynchronized is readNTPSynchronized: systemd-timedated's
	// NTPSynchronized over the system bus at socket. Tests replace it.
	ntpSynchronized func(ctx context.Context, socket string) (bool, error)
	// adjtimex is unix.Adjtimex, the fallback where timedated is not on
	// the bus; tests replace it, since the kernel clock is the one thing
	// no fixture tree can stand in for.
	adjtimex func(*unix.Timex) (int, error)
}

// clockBusTimeout bounds the D-Bus read when the check's context has no
// deadline of its own. timedated is bus-activated, so the first call after
// it exited on idle includes its start.
const clockBusTimeout = 10 * time.Second

var clockUnsynced = clockSync.Reason(reason.Reason{
	Name: "ClockUnsynchronized", Condition: finding.KernelReady, Severity: finding.Warning,
	Description: "The kernel reports its clock as not synchronized to any time source: systemd-timedated's NTPSynchronized " +
		"property, read over D-Bus, is false (it mirrors the kernel's STA_UNSYNC flag, which is read with adjtimex where " +
		"timedated is not on the system bus). chronyd or ntpd is not running or cannot reach a server. Clock drift breaks " +
		"TLS and token validity checks and log ordering.",
	Action: "Check the time daemon (chronyc tracking, systemctl status chronyd, timedatectl) and that the node reaches its " +
		"time source (169.254.169.123, the Amazon Time Sync Service, on EC2).",
})

func init() {
	probe.Register(clockSync, probe.NoSettings{}, func(_ *probe.Env, b probe.Base, _ probe.NoSettings) (probe.Probe, error) {
		return &clockSyncProbe{Base: b, ntpSynchronized: readNTPSynchronized, adjtimex: unix.Adjtimex}, nil
	})
}

func (p *clockSyncProbe) Needs() probe.Needs {
	return probe.Needs{LiveHost: "the kernel clock, through systemd-timedated or adjtimex"}
}

// Check asks whether the kernel clock is disciplined by a time source
// (chrony or ntpd clear STA_UNSYNC once they steer it).
//
// It asks systemd-timedated first: the unit's ProtectClock=yes blocks even
// the read-only adjtimex(2) by seccomp, and timedated computes
// NTPSynchronized from the same STA_UNSYNC flag. Where timedated cannot be
// asked (no system bus under env.Root, as in a fixture tree or a container
// without the host's /run; timedated not installed; any other bus error),
// it reads the flag with adjtimex, which only reads: a zero Modes field
// changes nothing. The kernel clock is not under env.Root, so that
// fallback sees the real clock even with a fixture tree.
func (p *clockSyncProbe) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	bctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		bctx, cancel = context.WithTimeout(ctx, clockBusTimeout)
		defer cancel()
	}
	synced, busErr := p.ntpSynchronized(bctx, host.Path(env.Root, "/run/dbus/system_bus_socket"))
	if busErr == nil {
		if synced {
			return nil, nil
		}
		return clockUnsynchronized("timedated NTPSynchronized=false"), nil
	}
	if ctx.Err() != nil {
		// The check itself was cancelled or ran out of time.
		return nil, fmt.Errorf("timedate1: %w", busErr)
	}
	var tx unix.Timex
	if _, err := p.adjtimex(&tx); err != nil {
		// Unknown is not unsynchronized: report a failed check so that
		// nothing is raised or cleared.
		return nil, fmt.Errorf("timedate1: %w; adjtimex: %w", busErr, err)
	}
	if tx.Status&unix.STA_UNSYNC == 0 {
		return nil, nil
	}
	return clockUnsynchronized("STA_UNSYNC"), nil
}

func clockUnsynchronized(source string) []probe.Result {
	return []probe.Result{clockUnsynced.Result(
		"The kernel clock is not synchronized to any time source ("+source+"); time drift may break time-sensitive workloads", "")}
}

// readNTPSynchronized reads org.freedesktop.timedate1's NTPSynchronized
// from systemd-timedated (bus-activated) over the system bus at socket. It
// connects for this one read and closes the connection again: the probe
// keeps nothing open between checks, so a restarted dbus-daemon or a
// probe rebuilt on reload needs no cleanup. ctx bounds the whole
// exchange, connecting included: godbus closes the connection when it
// ends.
func readNTPSynchronized(ctx context.Context, socket string) (bool, error) {
	if _, err := os.Stat(socket); errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("no system bus: %w", err)
	}
	conn, err := probe.DialSystemBus(ctx, socket)
	if err != nil {
		return false, fmt.Errorf("system bus %s: %w", socket, err)
	}
	defer conn.Close()
	var v godbus.Variant
	err = conn.Object("org.freedesktop.timedate1", "/org/freedesktop/timedate1").
		CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, "org.freedesktop.timedate1", "NTPSynchronized").
		Store(&v)
	if err != nil {
		return false, fmt.Errorf("get NTPSynchronized: %w", err)
	}
	synced, ok := v.Value().(bool)
	if !ok {
		return false, fmt.Errorf("NTPSynchronized is %s, not a boolean", v.Signature())
	}
	return synced, nil
}
