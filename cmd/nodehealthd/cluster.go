package main

import (
	"fmt"

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
