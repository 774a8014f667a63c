package network

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("no dbus-daemon here")
	}
	root, err := os.MkdirTemp("", "netdbus") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	socket := filepath.Join(root, "run/dbus/system_bus_socket")
	probetest.At(t, root).Mkdir("run/dbus")
	probetest.At(t, root).Write("bus.conf", `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path=`+socket+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>`)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, daemon, "--nofork", "--config-file="+filepath.Join(root, "bus.conf"))
	if err := cmd.Start(); err != nil {
		cancel()
		t.Skipf("dbus-daemon: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Skip("dbus-daemon did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The stand-in for systemd.
	sys, err := godbus.Dial("unix:path=" + socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	if err := sys.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		t.Fatal(err)
	}
	hello := make(chan error, 1)
	go func() { hello <- sys.Hello() }()
	select {
	case err := <-hello:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer from dbus-daemon (bus policy?)")
	}
	if reply, err := sys.RequestName("org.freedesktop.systemd1", godbus.NameFlagDoNotQueue); err != nil || reply != godbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.systemd1: %v %v", reply, err)
	}
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
