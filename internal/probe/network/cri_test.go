package network

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// serveCRI serves a fake CRI runtime service on sock with the gRPC library
// containerd uses, so that the hand-made client is checked against the
// real protocol.
func serveCRI(t *testing.T, sock string, ips map[string][]string) *grpc.Server {
	t.Helper()
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix socket: %v", err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, &netFakeCRI{ips: ips})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return srv
}

func TestNetCRIClient(t *testing.T) {
	dir, err := os.MkdirTemp("", "cri") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "containerd.sock")
	known := map[string][]string{
		"single": {"10.0.1.5"},
		"dual":   {"10.0.3.3", "2600:1f14::7", "2600:1f14::9"},
		"none":   nil,
	}
	srv := serveCRI(t, sock, known)
	c := newNetCRI(sock)
	ctx := context.Background()
	for id, want := range known {
		got, err := c.SandboxIPs(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: IPs %q, want %q", id, got, want)
		}
	}
	// The server's error reaches the caller with its gRPC status.
	if _, err := c.SandboxIPs(ctx, "gone"); err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "gRPC status 2") {
		t.Errorf("unknown sandbox: err = %v, want gRPC status 2 (Unknown) with the server's message", err)
	}

	// containerd restarts: the next call dials the new socket.
	srv.Stop()
	if _, err := c.SandboxIPs(ctx, "single"); err == nil {
		t.Error("call with containerd down succeeded")
	}
	os.Remove(sock)
	serveCRI(t, sock, map[string][]string{"single": {"10.0.9.9"}})
	if got, err := c.SandboxIPs(ctx, "single"); err != nil || !slices.Equal(got, []string{"10.0.9.9"}) {
		t.Errorf("after a restart: %q, %v", got, err)
	}
}

// A socket that answers something other than gRPC is an error, not IPs.
func TestNetCRIClientNotGRPC(t *testing.T) {
	dir, err := os.MkdirTemp("", "cri")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "containerd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix socket: %v", err)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"))
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	if ips, err := newNetCRI(sock).SandboxIPs(context.Background(), "single"); err == nil {
		t.Fatalf("IPs %q from a socket that does not speak gRPC", ips)
	}
}

func TestProtoFieldMalformed(t *testing.T) {
	// Field 1, length-delimited, claiming 10 bytes of which 2 follow.
	if _, _, err := protoField([]byte{0x0a, 10, 'a', 'b'}, 1); err == nil {
		t.Error("truncated message decoded")
	}
	// Unknown varint and fixed fields are skipped.
	b := []byte{0x08, 0x96, 0x01, 0x15, 1, 2, 3, 4, 0x0a, 2, 'o', 'k'}
	if v, ok, err := protoField(b, 1); err != nil || !ok || string(v) != "ok" {
		t.Errorf("protoField = %q, %v, %v", v, ok, err)
	}
}
