package network

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe/probetest"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
)

// TestNetDBusUnits reads unit state through the real D-Bus client stack
// from a real dbus-daemon listening where the host's system bus would be
// under --root, with a stand-in for systemd that exports one service's
// properties the way systemd does.
func TestNetDBusUnits(t *testing.T) {
	root, err := os.MkdirTemp("", "netdbus") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	socket := probetest.SystemBus(t, root)
	// Bounded: a misbehaving bus must fail the test, not hang the package.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The stand-in for systemd.
	sys := probetest.OwnBusName(t, ctx, socket, "org.freedesktop.systemd1")
	path := godbus.ObjectPath("/org/freedesktop/systemd1/unit/" + sddbus.PathBusEscape(netNPAUnit))
	props, err := prop.Export(sys, path, prop.Map{
		"org.freedesktop.systemd1.Unit": {
			"ActiveState": {Value: "active", Writable: true, Emit: prop.EmitTrue},
			"SubState":    {Value: "running", Writable: true, Emit: prop.EmitTrue},
		},
		"org.freedesktop.systemd1.Service": {
			"Result":    {Value: "success", Writable: true, Emit: prop.EmitTrue},
			"NRestarts": {Value: uint32(3), Writable: true, Emit: prop.EmitTrue},
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	units := newNetDBusUnits(root)
	t.Cleanup(units.close)
	read := func() netUnitState {
		t.Helper()
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		st, err := units.UnitState(cctx, netNPAUnit)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := read(); st != (netUnitState{ActiveState: "active", SubState: "running", Result: "success", NRestarts: 3}) {
		t.Fatalf("first read: %+v", st)
	}
	// The connection outlives the check that opened it.
	first := units.conn
	props.SetMust("org.freedesktop.systemd1.Unit", "ActiveState", "failed")
	props.SetMust("org.freedesktop.systemd1.Service", "NRestarts", uint32(9))
	if st := read(); st.ActiveState != "failed" || st.NRestarts != 9 {
		t.Fatalf("second read: %+v", st)
	}
	if units.conn != first {
		t.Fatal("the connection did not survive the end of the first check")
	}
	// A unit systemd does not have is an error, not an empty state.
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if _, err := units.UnitState(cctx, "no-such.service"); err == nil {
		t.Fatal("unknown unit read as a state")
	}
	// And the next read reconnects.
	if st := read(); st.ActiveState != "failed" {
		t.Fatalf("after reconnect: %+v", st)
	}
}
