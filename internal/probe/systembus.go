package probe

import (
	"context"
	"os"
	"strconv"

	godbus "github.com/godbus/dbus/v5"
)

// DialSystemBus connects to the system bus at socket (under the host root,
// so that the host container and fixture trees work) and authenticates as
// this process's uid. godbus closes the connection when ctx ends.
func DialSystemBus(ctx context.Context, socket string) (*godbus.Conn, error) {
	c, err := godbus.Dial("unix:path="+socket, godbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	if err := c.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Hello(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
