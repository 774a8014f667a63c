package network

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// netCRI asks the container runtime, over CRI on its unix socket, which IPs
// it gave a pod sandbox. It is the runtime's own record, independent of
// ipamd, which is what makes it a cross-check of ipamd's checkpoint.
//
// It makes its one unary call (RuntimeService.PodSandboxStatus) as plain
// gRPC over cleartext HTTP/2 with net/http and decodes the three fields it
// reads with protowire: the gRPC library and the generated CRI API cost the
// daemon 8 MB of binary and resident text for this single call. The
// transport keeps no connection between checks (minutes apart), dials
// again after a containerd restart, and the tests check the client against
// a real gRPC server.
type netCRI struct {
	socket string
	client *http.Client
}

// criMaxResponse bounds a PodSandboxStatus answer (gRPC's default receive
// limit); a sandbox's status is a few kilobytes.
const criMaxResponse = 4 << 20

func newNetCRI(socket string) *netCRI {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	return &netCRI{socket: socket, client: &http.Client{Transport: &http.Transport{
		Protocols: &protocols,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		IdleConnTimeout: 30 * time.Second,
	}}}
}

func (c *netCRI) SandboxIPs(ctx context.Context, id string) ([]string, error) {
	// NMA's per-call bound: one stuck sandbox must not use up the check.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// PodSandboxStatusRequest{pod_sandbox_id: id}
	req := protowire.AppendTag(nil, 1, protowire.BytesType)
	req = protowire.AppendString(req, id)
	resp, err := c.unary(cctx, "/runtime.v1.RuntimeService/PodSandboxStatus", req)
	if err != nil {
		return nil, err
	}
	// PodSandboxStatusResponse.status(1) → PodSandboxStatus.network(5) →
	// PodSandboxNetworkStatus{ip(1), additional_ips(2) → PodIP.ip(1)}.
	status, ok, err := protoField(resp, 1)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("sandbox status is empty")
	}
	network, _, err := protoField(status, 5)
	if err != nil {
		return nil, err
	}
	var ips []string
	err = protoEach(network, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			if len(v) > 0 {
				ips = append(ips, string(v))
			}
		case 2:
			ip, _, err := protoField(v, 1)
			if err != nil {
				return err
			}
			if len(ip) > 0 {
				ips = append(ips, string(ip))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ips, nil
}

// unary makes one gRPC call and returns the response message.
func (c *netCRI) unary(ctx context.Context, method string, msg []byte) ([]byte, error) {
	body := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(body[1:], uint32(len(msg)))
	body = append(body, msg...)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://localhost"+method, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	if dl, ok := ctx.Deadline(); ok {
		req.Header.Set("Grpc-Timeout", strconv.FormatInt(max(time.Until(dl).Milliseconds(), 1), 10)+"m")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cri %s: %w", method, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cri %s: HTTP status %s", method, resp.Status)
	}
	// A call that fails at once answers with headers only, the status
	// among them; otherwise the status is in the trailers after the body.
	if err := grpcStatus(method, resp.Header); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, criMaxResponse+5+1))
	if err != nil {
		return nil, fmt.Errorf("cri %s: %w", method, err)
	}
	if err := grpcStatus(method, resp.Trailer); err != nil {
		return nil, err
	}
	if resp.Trailer.Get("Grpc-Status") == "" {
		return nil, fmt.Errorf("cri %s: answer without a gRPC status", method)
	}
	if len(data) < 5 {
		return nil, fmt.Errorf("cri %s: answer without a message", method)
	}
	if data[0] != 0 {
		return nil, fmt.Errorf("cri %s: compressed answer, which was not asked for", method)
	}
	n := binary.BigEndian.Uint32(data[1:5])
	if n > criMaxResponse || int(n) != len(data)-5 {
		return nil, fmt.Errorf("cri %s: answer of %d bytes holds a message of %d", method, len(data)-5, n)
	}
	return data[5:], nil
}

// grpcStatus returns the error a gRPC status in h reports, if any.
func grpcStatus(method string, h http.Header) error {
	code := h.Get("Grpc-Status")
	if code == "" || code == "0" {
		return nil
	}
	msg, err := url.PathUnescape(h.Get("Grpc-Message"))
	if err != nil {
		msg = h.Get("Grpc-Message")
	}
	return fmt.Errorf("cri %s: gRPC status %s: %s", method, code, msg)
}

// protoEach calls f with each length-delimited field of the message b,
// skipping fields of other wire types.
func protoEach(b []byte, f func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("cri: malformed message: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("cri: malformed message: %w", protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return fmt.Errorf("cri: malformed message: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, v); err != nil {
			return err
		}
	}
	return nil
}

// protoField returns the length-delimited field num of b. Encoders write a
// singular field once; should it repeat, the last one is taken.
func protoField(b []byte, num protowire.Number) (v []byte, ok bool, err error) {
	err = protoEach(b, func(n protowire.Number, fv []byte) error {
		if n == num {
			v, ok = fv, true
		}
		return nil
	})
	return v, ok, err
}
