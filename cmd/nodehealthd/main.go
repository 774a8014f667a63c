// Command nodehealthd is the node-health daemon: it reads the kernel ring
// buffer, the journal and log files, applies health rules and keeps node
// conditions and findings in a local state file. In local mode (no cluster)
// it prints findings to standard output.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/nodehealthd/nodehealthd/internal/config"
	"github.com/nodehealthd/nodehealthd/internal/daemon"
	"github.com/nodehealthd/nodehealthd/internal/detector"
	"github.com/nodehealthd/nodehealthd/internal/logging"
	"github.com/nodehealthd/nodehealthd/internal/nodediag"
	"github.com/nodehealthd/nodehealthd/internal/outqueue"
	"github.com/nodehealthd/nodehealthd/internal/publish/console"
	"github.com/nodehealthd/nodehealthd/internal/publish/journald"
	"github.com/nodehealthd/nodehealthd/internal/publish/metrics"
	"github.com/nodehealthd/nodehealthd/internal/source/kmsg"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "privileged-helper" {
		return runHelper(ctx, args[1:], stderr)
	}
	var o options
	fs := newFlagSet(&o)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: nodehealthd [flags]\n       nodehealthd privileged-helper [--listen PATH]\n\nMonitors this node's kernel, container runtime, storage, networking and accelerators.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.version {
		fmt.Fprintln(stdout, "nodehealthd", version)
		return 0
	}
	if err := o.resolveOutput(); err != nil {
		fmt.Fprintln(stderr, "nodehealthd:", err)
		return 2
	}
	level, err := logging.ParseLevel(o.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "nodehealthd:", err)
		return 2
	}
	log := logging.New(stderr, level)
	// Logs and findings leave through queues (internal/outqueue): give the
	// last ones, "stopped" or why not, a moment to get out.
	defer outqueue.FlushAll(2 * time.Second)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load(o.configPath)
	if err != nil {
		// The daemon reports it again and runs with defaults; the
		// subsystems get defaults too.
		log.Error("config unreadable; using defaults", "err", err)
		cfg = &config.Config{}
	}
	e := newEnv(ctx, log, &o, cfg, stdout)
	if o.once.enabled {
		// Before anything binds a port or contacts the API server.
		return e.runOnce()
	}
	if err := e.wire(); err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	log.Info("nodehealthd starting", "version", version, "root", o.root, "state_dir", o.stateDir)
	if err := daemon.Run(ctx, e.opts); err != nil {
		log.Error("nodehealthd cannot run", "err", err)
		return 1
	}
	log.Info("nodehealthd stopped")
	return 0
}

// resolveOutput checks -o and fills in its default: under systemd every
// finding is a structured journal entry, and printing it on stdout (the
// journal too) would log it twice.
func (o *options) resolveOutput() error {
	switch o.output {
	case "":
		o.output = "text"
		if journald.UnderJournal() {
			o.output = "none"
		}
	case "text", "json", "none":
	default:
		return fmt.Errorf("-o %q: want text, json or none", o.output)
	}
	return nil
}

// env is what the subsystems are wired from, and what they share: the
// daemon's options they add to, the metrics registry, the detector
// factories.
type env struct {
	ctx    context.Context
	log    *slog.Logger
	o      *options
	stdout io.Writer
	// cfg is the configuration at start (nil fields = defaults); the
	// daemon loads it again on every reload.
	cfg  *config.Config
	opts daemon.Options
	// metrics exists whether or not the endpoint is served: the cluster
	// publisher and the probes report to it.
	metrics *metrics.Metrics
	// detectors build the detectors each time the daemon (re)starts them.
	detectors []func(daemon.SourceContext) []detector.Detector
	// metricsAddr is the address the endpoint listens on (tests ask for
	// port 0).
	metricsAddr net.Addr
	// clusterOn: cluster publishing is set up; requests serves the
	// NodeDiagnostics of this node through its connection.
	clusterOn bool
	requests  *nodediag.Server
}

func newEnv(ctx context.Context, log *slog.Logger, o *options, cfg *config.Config, stdout io.Writer) *env {
	e := &env{ctx: ctx, log: log, o: o, cfg: cfg, stdout: stdout, metrics: metrics.New(metrics.Options{Version: version})}
	e.opts = daemon.Options{Root: o.root, StateDir: o.stateDir, ConfigPath: o.configPath, RulesDir: o.rulesDir, Logger: log}
	e.opts.NewDetectors = e.newDetectors
	return e
}

// wire sets up every subsystem, in this order: what prints, what reports
// to systemd, the metrics endpoint, cluster publishing, the detectors
// (probes, plugins, accelerators) and diagnostics.
func (e *env) wire() error {
	if err := e.setupOutput(); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	e.setupSystemd()
	e.setupMetrics()
	if err := e.setupCluster(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	e.setupProbes()
	e.setupPlugins()
	e.setupAccelerators()
	if err := e.setupDiagnostics(); err != nil {
		return fmt.Errorf("diagnostics: %w", err)
	}
	return nil
}

// setupOutput adds the console publisher -o asks for, and reads the kernel
// log from the device systemd opened, if it did.
func (e *env) setupOutput() error {
	// Registered in every mode, so that dashboards find the series.
	if err := e.metrics.Register(outqueue.Collectors()...); err != nil {
		return err
	}
	if e.o.output == "text" || e.o.output == "json" {
		e.opts.Publishers = append(e.opts.Publishers, console.New(e.outputWriter(), e.o.output == "json"))
	}
	if e.o.root == "/" {
		if dev := kmsg.Inherited(); dev != nil {
			e.opts.KmsgDevice = dev
			e.log.Info("reading the kernel log from the device systemd opened", "device", dev.Name())
		}
	}
	return nil
}

// outputWriter is stdout for the console publisher: a terminal directly,
// anything else (a pipe to a container's log collector, the journal) from
// a queue, so that a reader that stalls does not stall the pipeline. Drops
// are told in the log: a line of text on stdout would break -o json.
func (e *env) outputWriter() io.Writer {
	if f, ok := e.stdout.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		return e.stdout
	}
	return outqueue.Writer("stdout", e.stdout, func(n uint64) error {
		e.log.Warn("printed findings dropped: the reader of stdout did not keep up (nodehealthd_output_dropped_total)", "dropped", n)
		return nil
	})
}

// newDetectors is daemon.Options.NewDetectors: every subsystem's detectors.
func (e *env) newDetectors(sc daemon.SourceContext) []detector.Detector {
	var dets []detector.Detector
	for _, build := range e.detectors {
		dets = append(dets, build(sc)...)
	}
	return dets
}
