package privhelper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/probe"
)

// Client asks the helper on its socket. It implements probe.Privileged.
type Client struct {
	Socket string
	// Timeout bounds a request whose context has no earlier deadline.
	Timeout time.Duration
}

var _ probe.Privileged = (*Client)(nil)

// NewClient returns a client of the helper listening on socket.
func NewClient(socket string) *Client {
	return &Client{Socket: socket, Timeout: time.Minute}
}

// ErrUnavailable wraps failures to reach the helper at all.
var ErrUnavailable = errors.New("privileged helper unavailable")

func (c *Client) do(ctx context.Context, req Request) (Response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return Response{}, fmt.Errorf("%w (is nodehealthd-helper.socket running?): %w", ErrUnavailable, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	return exchange(ctx, conn, req)
}

// exchange sends req on conn and reads the response.
func exchange(ctx context.Context, conn net.Conn, req Request) (Response, error) {
	// The helper refuses a peer as soon as it connects, before reading its
	// request: the send may then fail (EPIPE) while the refusal is
	// already here to read, and it says more than the send's error.
	serr := json.NewEncoder(conn).Encode(&req)
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		switch {
		case ctx.Err() != nil:
			return Response{}, fmt.Errorf("privileged helper: %s: %w", req.Op, ctx.Err())
		case serr != nil:
			return Response{}, fmt.Errorf("privileged helper: send %s: %w", req.Op, serr)
		}
		return Response{}, fmt.Errorf("privileged helper: %s: reading the response: %w", req.Op, err)
	}
	if resp.Error != "" {
		return Response{}, fmt.Errorf("privileged helper: %w", &remoteError{msg: resp.Error, kind: resp.ErrorKind})
	}
	if serr != nil {
		return Response{}, fmt.Errorf("privileged helper: send %s: %w", req.Op, serr)
	}
	return resp, nil
}

// remoteError is an error the helper reported.
type remoteError struct{ msg, kind string }

func (e *remoteError) Error() string { return e.msg }

// Is makes a command missing from the host exec.ErrNotFound, as it is
// in-process: the probe takes it as "not on this host".
func (e *remoteError) Is(target error) bool {
	return e.kind == KindNotFound && target == exec.ErrNotFound
}

// Processes implements probe.Privileged.
func (c *Client) Processes(ctx context.Context, environ bool) ([]probe.Process, error) {
	resp, err := c.do(ctx, Request{Op: OpProcesses, Environ: environ})
	return resp.Processes, err
}

// Command implements probe.Privileged.
func (c *Client) Command(ctx context.Context, name string) ([]byte, error) {
	resp, err := c.do(ctx, Request{Op: OpCommand, Command: name})
	return resp.Data, err
}

// IdentifyController implements probe.NVMeAdmin.
func (c *Client) IdentifyController(ctx context.Context, dev string) ([]byte, error) {
	resp, err := c.do(ctx, Request{Op: OpIdentify, Device: dev})
	return resp.Data, err
}

// LogPage implements probe.NVMeAdmin.
func (c *Client) LogPage(ctx context.Context, dev string, lid uint8, size int) ([]byte, error) {
	resp, err := c.do(ctx, Request{Op: OpLogPage, Device: dev, LogPage: lid, Size: size})
	return resp.Data, err
}
