package main

import (
	"context"
	"fmt"

	"k8s.io/client-go/rest"

	"github.com/nodehealthd/nodehealthd/internal/publish/cluster"
)

// setupCluster: conditions on the Node and Warning events, written with the
// kubelet's own kubeconfig. Without one the daemon stays in local mode and
// keeps looking for it.
func (e *env) setupCluster() error {
	switch e.o.clusterMode {
	case "off":
		return nil
	case "auto":
	default:
		return fmt.Errorf("--cluster %q: want auto or off", e.o.clusterMode)
	}
	cfg := e.o.cluster
	cfg.Root = e.o.root
	cfg.Logger = e.log
	cfg.UserAgent = "nodehealthd/" + version
	cfg.Observer = e.metrics
	// Requests from the cluster (requests.go) act as the node this
	// publisher found; they are set up after it, before it starts.
	cfg.OnConnect = func(ctx context.Context, rc *rest.Config, node string) {
		if e.requests != nil {
			e.requests.Connect(ctx, rc, node)
		}
	}
	e.clusterOn = true
	p, err := cluster.New(cfg)
	if err != nil {
		return err
	}
	// Warning findings wait in the state file until they are events in
	// the API server.
	e.opts.Outbox = true
	e.opts.Publishers = append(e.opts.Publishers, p)
	return nil
}
