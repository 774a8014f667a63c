package main

import (
	"flag"

	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/privhelper"
	"github.com/nodehealthd/nodehealthd/internal/publish/cluster"
	"github.com/nodehealthd/nodehealthd/internal/publish/consolesummary"
	"github.com/nodehealthd/nodehealthd/internal/publish/metrics"
)

// options are the command line. They are process-level facts (where the
// host root, state and config are, how to log and print) and the switches
// of the subsystems; what an operator tunes while the daemon runs is in
// config.yaml.
type options struct {
	root, stateDir, configPath, rulesDir string
	// output is -o; "" picks the default (outputDefault).
	output, logLevel string
	version          bool

	once onceOptions

	metricsAddress string
	pprof          bool

	clusterMode string // auto or off
	cluster     cluster.Config

	tags string

	nvmlLibrary string

	helperSocket string
	consolePath  string
}

// newFlagSet declares every flag of the daemon, bound to o, with its
// default.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("nodehealthd", flag.ContinueOnError)
	fs.StringVar(&o.root, "root", "/", "host root: every host path is read under it (e.g. /.bottlerocket/rootfs)")
	fs.StringVar(&o.stateDir, "state-dir", "/var/lib/nodehealthd", "directory of the state file")
	fs.StringVar(&o.configPath, "config", config.DefaultPath, "configuration file (missing = defaults)")
	fs.StringVar(&o.rulesDir, "rules-dir", "", "operator rules directory (default: config rulesDir, else /etc/nodehealthd/rules.d)")
	fs.StringVar(&o.output, "o", "", "how findings are printed on stdout: text, json or none (default: none under systemd, where every "+
		"finding is a journal entry and stdout is the journal too; text elsewhere)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")

	fs.BoolVar(&o.once.enabled, "once", false, "check every host probe against --root, print the findings and the probes that failed, "+
		"could not conclude or were skipped (-o text or json), and exit: 0 when every probe ran, 1 when one failed")
	fs.DurationVar(&o.once.window, "once-window", defaultOnceWindow, "with --once, the time over which a probe that needs several "+
		"checks (counter deltas, a state seen twice) is checked, its checks spread evenly over it; 0 checks every probe once "+
		"and reports those probes as inconclusive")
	fs.BoolVar(&o.once.liveHost, "once-live-host", false, "with --once and a --root other than /, also run the probes that read "+
		"the running host rather than the tree (kernel clock, netlink, iptables): for a root that is this host's own file "+
		"system, as in Bottlerocket's host container")

	fs.StringVar(&o.metricsAddress, "metrics-address", metrics.DefaultAddress,
		"address for /metrics, /healthz and /readyz (empty disables; keep it on loopback unless the port is firewalled)")
	fs.BoolVar(&o.pprof, "pprof", false, "also serve Go profiles under /debug/pprof/ on the metrics address (binaries built with make build TAGS=pprof)")

	c := &o.cluster
	fs.StringVar(&o.clusterMode, "cluster", "auto", "cluster publishing: auto (use the kubelet kubeconfig once it exists) or off (local mode only)")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig to publish with (default: the kubelet's, found under --root)")
	fs.StringVar(&c.NodeName, "node-name", "", "Node to publish to (default: kubelet --hostname-override, else the client certificate's node, else the hostname)")

	fs.StringVar(&o.tags, "tags", "", "comma-separated host tags the host cannot tell itself (eks-auto, hybrid); the os-release ID is always added")

	fs.StringVar(&o.nvmlLibrary, "nvml-library", "", "path of libnvidia-ml.so.1 (default: the dynamic linker's search path; e.g. /run/nvidia/driver/usr/lib64/libnvidia-ml.so.1 with the GPU operator's driver container)")

	fs.StringVar(&o.helperSocket, "privileged-helper", "", "socket of nodehealthd's privileged helper, which does the probes' privileged reads "+
		"(the systemd unit sets "+privhelper.DefaultSocket+"); empty: do them in this process")
	fs.StringVar(&o.consolePath, "diagnostics-console", consolesummary.DefaultPath,
		"where the summary goes while a condition is False (diagnostics.console in config.yaml switches it)")
	return fs
}

// defaultOptions are the options with no flag given.
func defaultOptions() options {
	var o options
	_ = newFlagSet(&o).Parse(nil)
	return o
}
