package probe

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// netCRI asks the container runtime, over CRI on its unix socket, which IPs
// it gave a pod sandbox. It is the runtime's own record, independent of
// ipamd, which is what makes it a cross-check of ipamd's checkpoint. The
// client connects lazily and gRPC reconnects by itself, so a containerd
// restart costs at most the calls made while it is down.
type netCRI struct {
	socket string
	once   sync.Once
	client runtimeapi.RuntimeServiceClient
	err    error
}

func newNetCRI(socket string) *netCRI { return &netCRI{socket: socket} }

func (c *netCRI) SandboxIPs(ctx context.Context, id string) ([]string, error) {
	c.once.Do(func() {
		conn, err := grpc.NewClient("unix://"+c.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			c.err = err
			return
		}
		c.client = runtimeapi.NewRuntimeServiceClient(conn)
	})
	if c.err != nil {
		return nil, c.err
	}
	// NMA's per-call bound: one stuck sandbox must not use up the check.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.client.PodSandboxStatus(cctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		return nil, err
	}
	st := resp.GetStatus()
	if st == nil {
		return nil, errors.New("sandbox status is empty")
	}
	var ips []string
	if ip := st.GetNetwork().GetIp(); ip != "" {
		ips = append(ips, ip)
	}
	for _, a := range st.GetNetwork().GetAdditionalIps() {
		if a.GetIp() != "" {
			ips = append(ips, a.GetIp())
		}
	}
	return ips, nil
}
