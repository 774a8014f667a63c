package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"

	"github.com/nodehealthd/nodehealthd/internal/finding"
	"github.com/nodehealthd/nodehealthd/internal/host"
	"github.com/nodehealthd/nodehealthd/internal/reason"
)

// repeatedRestartConfig is probes.repeated-restart.
var repeatedRestartKind = probe.Kind{Name: "repeated-restart", Period: 5 * time.Minute}

type repeatedRestartSettings struct {
	// Threshold: a unit fires once its NRestarts exceeds this and has grown
	// since the previous check.
	Threshold uint32 `yaml:"threshold"`
}

// serviceRestarts reads systemd's restart counters; the D-Bus client is
// behind it so that tests can count restarts without a system bus.
type serviceRestarts interface {
	// Restarts returns NRestarts of every loaded .service unit.
	Restarts(ctx context.Context) (map[string]uint32, error)
	Close()
}

type repeatedRestartProbe struct {
	probe.Base
	repeatedRestartSettings
	// socket is the system bus socket under env.Root.
	socket string
	// connect opens a client for one check; a connection is not kept
	// between checks so that a probe rebuilt on reload leaks nothing and a
	// restarted dbus-daemon needs no reconnect logic.
	connect func(ctx context.Context, socket string) (serviceRestarts, error)

	mu sync.Mutex
	// last is NRestarts per unit at the previous check; nil before the
	// first check.
	last  map[string]uint32
	noBus unavailable
}

var repeatedRestart = repeatedRestartKind.Reason(reason.Reason{
	Name: "${Unit}RepeatedRestart", Condition: finding.ContainerRuntimeReady, Severity: finding.Warning,
	Description: "A systemd service has restarted more than 3 times (probes.repeated-restart.threshold, systemd's NRestarts) " +
		"and again since the previous check. The reason names the unit, title-cased without .service: kubelet.service gives " +
		"KubeletRepeatedRestart. Restarts from before the daemon started are not reported. Not checked on Bottlerocket, " +
		"whose host has no D-Bus system bus.",
	Action: "Read the unit's log (journalctl -u <unit>) to find why it exits and fix its configuration or dependencies. " +
		"An expected restart loop can be silenced per unit with reasons.<Unit>RepeatedRestart.enabled: false.",
})

func init() {
	probe.Register(repeatedRestartKind, repeatedRestartSettings{Threshold: 3}, func(env *probe.Env, b probe.Base, s repeatedRestartSettings) (probe.Probe, error) {
		// Bottlerocket's host has no D-Bus system bus to ask (as in NMA).
		if env.Tags["bottlerocket"] {
			return nil, nil
		}
		return &repeatedRestartProbe{Base: b, repeatedRestartSettings: s,
			socket: host.Path(env.Root, "/run/dbus/system_bus_socket"), connect: dialSystemdRestarts}, nil
	})
}

// Needs: the first check's counts are only a baseline.
func (p *repeatedRestartProbe) Needs() probe.Needs { return probe.Needs{Checks: 2} }

// Check reports EVERY service whose NRestarts is above the threshold and
// grew since the previous check (NMA stops at the first one per poll).
//
// Baseline: counts seen at the first check are only recorded, so a daemon
// (re)start does not report restarts that happened before it ran (NMA starts
// from 0 and reports every unit with more than three lifetime restarts once
// per agent start). A unit first loaded after the first check starts from
// 0: all of its restarts happened while we were watching.
func (p *repeatedRestartProbe) Check(ctx context.Context, env *probe.Env) ([]probe.Result, error) {
	if _, err := os.Stat(p.socket); errors.Is(err, fs.ErrNotExist) {
		// No system bus on this host (a container, a fixture tree):
		// nothing to check rather than a failure every period.
		p.noBus.log(env, p, "no D-Bus system bus; systemd restart checks unavailable", "socket", p.socket)
		return nil, nil
	}
	src, err := p.connect(ctx, p.socket)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd over D-Bus at %s: %w", p.socket, err)
	}
	defer src.Close()
	cur, err := src.Restarts(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	first := p.last == nil
	var out []probe.Result
	for unit, n := range cur {
		prev, known := p.last[unit]
		if first {
			prev = n
		} else if !known {
			prev = 0
		}
		if n > p.Threshold && n > prev {
			out = append(out, repeatedRestart.Instance(restartReason(unit),
				fmt.Sprintf("Systemd unit %q has restarted (NRestarts %d -> %d)", unit, prev, n), unit))
		}
	}
	// Units no longer loaded are forgotten: systemd resets NRestarts when
	// it loads a unit again.
	p.last = cur
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// restartReason builds NMA's reason for a unit: the name without
// ".service", Unicode title-cased, then "RepeatedRestart"
// (nvidia-persistenced.service → Nvidia-PersistencedRepeatedRestart).
func restartReason(unit string) string {
	return titleCase(strings.TrimSuffix(unit, ".service")) + "RepeatedRestart"
}

// titleCase matches golang.org/x/text/cases.Title(language.Und) on unit
// names without pulling in x/text: the first cased letter of each word is
// upper-cased and the rest of the word lower-cased. Letters, digits and '_'
// continue a word; a full stop, colon or apostrophe continues it unless
// doubled; anything else (hyphen, at sign, backslash) ends it.
func titleCase(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	inWord, prevMid := false, false
	for _, r := range s {
		mid := r == '.' || r == ':' || r == '\''
		switch {
		case unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r):
			if inWord {
				b.WriteRune(unicode.ToLower(r))
			} else {
				b.WriteRune(unicode.ToTitle(r))
				inWord = true
			}
		default:
			b.WriteRune(r)
			if mid && prevMid {
				inWord = false
			} else if !mid && !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r) && r != '_' {
				inWord = false
			}
		}
		prevMid = mid
	}
	return b.String()
}

// systemdRestarts is the real serviceRestarts: systemd's manager over the
// system bus.
type systemdRestarts struct{ conn *sddbus.Conn }

// dialSystemdRestarts connects to the system bus at socket (under the host
// root, so the host container and fixture trees work) and authenticates as
// this process's uid.
func dialSystemdRestarts(ctx context.Context, socket string) (serviceRestarts, error) {
	conn, err := sddbus.NewConnection(func() (*godbus.Conn, error) {
		return probe.DialSystemBus(ctx, socket)
	})
	if err != nil {
		return nil, err
	}
	return &systemdRestarts{conn: conn}, nil
}

func (s *systemdRestarts) Close() { s.conn.Close() }

func (s *systemdRestarts) Restarts(ctx context.Context) (map[string]uint32, error) {
	units, err := s.conn.ListUnitsContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list systemd units: %w", err)
	}
	out := map[string]uint32{}
	for _, u := range units {
		if !strings.HasSuffix(u.Name, ".service") {
			continue
		}
		prop, err := s.conn.GetUnitTypePropertyContext(ctx, u.Name, "Service", "NRestarts")
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// The unit was unloaded since the listing, or systemd is too
			// old to count restarts (< 235): skip it, not the others.
			continue
		}
		n, ok := prop.Value.Value().(uint32)
		if !ok {
			return nil, fmt.Errorf("%s NRestarts: unexpected type %s", u.Name, prop.Value.Signature())
		}
		if n > 0 {
			out[u.Name] = n
		}
	}
	return out, nil
}
