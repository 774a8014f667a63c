package network

import (
	"context"
	"fmt"
	"sync"

	"github.com/nodehealthd/nodehealthd/internal/probe"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"

	"github.com/nodehealthd/nodehealthd/internal/host"
)

// netUnitState is what the networking probes read of a systemd service.
type netUnitState struct {
	ActiveState, SubState, Result string
	NRestarts                     uint32
}

// netUnits reads systemd unit state. The daemon uses systemd's manager over
// the system bus (netDBusUnits); tests use a fake.
type netUnits interface {
	UnitState(ctx context.Context, unit string) (netUnitState, error)
}

// netDBusUnits talks to systemd over <root>/run/dbus/system_bus_socket,
// the host's bus even when the daemon runs in a container with the host
// mounted at --root. It connects on first use and again after an error,
// so a bus restart costs one failed check, not the probe.
type netDBusUnits struct {
	socket string
	mu     sync.Mutex
	conn   *sddbus.Conn
	cancel context.CancelFunc // ends conn's context
}

func newNetDBusUnits(root string) *netDBusUnits {
	return &netDBusUnits{socket: host.Path(root, "/run/dbus/system_bus_socket")}
}

func (d *netDBusUnits) connect(ctx context.Context) (*sddbus.Conn, error) {
	if d.conn != nil && d.conn.Connected() {
		return d.conn, nil
	}
	d.close()
	// godbus closes a connection when its context ends, so the
	// connection gets a context of its own that outlives this check;
	// the check's context only bounds connecting.
	cctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	conn, err := sddbus.NewConnection(func() (*godbus.Conn, error) {
		return probe.DialSystemBus(cctx, d.socket)
	})
	if !stop() {
		// The check ended while connecting: the connection is gone.
		if err == nil {
			conn.Close()
			err = ctx.Err()
		}
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("system bus %s: %w", d.socket, err)
	}
	d.conn, d.cancel = conn, cancel
	return conn, nil
}

func (d *netDBusUnits) close() {
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
	if d.cancel != nil {
		d.cancel()
		d.cancel = nil
	}
}

func (d *netDBusUnits) UnitState(ctx context.Context, unit string) (netUnitState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	conn, err := d.connect(ctx)
	if err != nil {
		return netUnitState{}, err
	}
	st, err := netReadUnit(ctx, conn, unit)
	if err != nil {
		d.close()
	}
	return st, err
}

func netReadUnit(ctx context.Context, conn *sddbus.Conn, unit string) (netUnitState, error) {
	var st netUnitState
	props, err := conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return st, fmt.Errorf("%s: %w", unit, err)
	}
	var ok bool
	if st.ActiveState, ok = props["ActiveState"].(string); !ok {
		return st, fmt.Errorf("%s: no ActiveState", unit)
	}
	st.SubState, _ = props["SubState"].(string)
	// Result and NRestarts belong to the Service interface; a unit that
	// is not loaded has neither, which leaves them empty and zero.
	svc, err := conn.GetUnitTypePropertiesContext(ctx, unit, "Service")
	if err == nil {
		st.Result, _ = svc["Result"].(string)
		st.NRestarts, _ = svc["NRestarts"].(uint32)
	}
	return st, nil
}
