package main

import (
	"flag"
	"fmt"

	"github.com/nodehealthd/nodehealthd/internal/publish/cluster"
)

// Cluster publishing: conditions on the Node and Warning events, written
// with the kubelet's own kubeconfig. Without one the daemon stays in local
// mode and keeps looking for it.
func init() {
	var (
		mode string
		cfg  cluster.Config
	)
	register(subsystem{
		name: "cluster",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&mode, "cluster", "auto", "cluster publishing: auto (use the kubelet kubeconfig once it exists) or off (local mode only)")
			fs.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig to publish with (default: the kubelet's, found under --root)")
			fs.StringVar(&cfg.NodeName, "node-name", "", "Node to publish to (default: kubelet --hostname-override, else the client certificate's node, else the hostname)")
			fs.DurationVar(&cfg.Heartbeat, "cluster-heartbeat", cluster.DefaultHeartbeat, "how often unchanged conditions are written again (jittered up to +20%)")
			fs.IntVar(&cfg.WriteBurst, "cluster-write-burst", cluster.DefaultWriteBurst, "API writes the node may make at once (condition patches and events)")
			fs.Float64Var(&cfg.WritesPerMinute, "cluster-writes-per-minute", cluster.DefaultWritesPerMinute, "sustained API writes per minute once the burst is spent")
			fs.IntVar(&cfg.EventBurst, "event-burst", cluster.DefaultEventBurst, "events one reason may send at once")
			fs.Float64Var(&cfg.EventsPerMinute, "events-per-minute", cluster.DefaultEventsPerMinute, "sustained events per minute for one reason")
			fs.IntVar(&cfg.MaxEventsPerReason, "max-pending-events-per-reason", cluster.DefaultMaxEventsPerReason, "distinct events of one reason that may wait for budget or the API server; more are dropped and counted")
			fs.DurationVar(&cfg.ExecTimeout, "cluster-exec-timeout", cluster.DefaultExecTimeout, "how long the kubeconfig's exec credential plugin (aws eks get-token) may run before it is killed")
			fs.DurationVar(&cfg.DiscoverInterval, "cluster-discover-interval", cluster.DefaultDiscoverInterval, "longest time between two looks for a missing kubelet kubeconfig (the first are 10s apart, then the gap doubles)")
			fs.DurationVar(&cfg.FileCheckInterval, "cluster-file-check-interval", cluster.DefaultFileCheckInterval, "how often the kubeconfig and the kubelet's client certificate are checked for changes (rotation)")
			fs.BoolVar(&cfg.NoWatch, "cluster-no-watch", false, "do not watch the Node: a re-registered or overwritten Node is repaired at the next heartbeat instead of at once")
		},
		setup: func(e *env) error {
			switch mode {
			case "off":
				return nil
			case "auto":
			default:
				return fmt.Errorf("--cluster %q: want auto or off", mode)
			}
			cfg.Root = e.root
			cfg.Logger = e.log
			cfg.UserAgent = "nodehealthd/" + version
			cfg.Observer = daemonMetrics
			p, err := cluster.New(cfg)
			if err != nil {
				return err
			}
			// Warning findings wait in the state file until they are
			// events in the API server.
			e.opts.Outbox = true
			e.opts.Publishers = append(e.opts.Publishers, p)
			return nil
		},
	})
}
